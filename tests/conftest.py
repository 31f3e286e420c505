import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

os.environ.setdefault("DGLBACKEND", "pytorch")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def sample_batch(task, shared, seed=0, size=32):
    """A training batch of ``size`` random training edges for a method's task (unit tests of losses)."""
    from raymm.sampling import NegativeSampler, neighbourhoods

    g, t = shared.graph, task.cfg.train
    indptr, items = g.user_items()
    users = np.repeat(np.arange(g.num_users), np.diff(indptr))
    idx = np.random.default_rng(seed).choice(len(users), size)
    return task.make_batch(users[idx], items[idx], NegativeSampler(g, seed),
                           neighbourhoods(g, t.fanouts, t.batch_size, t.propagation, task.normalization))


def tiny_multimodal(users=40, items=30, seed=0, dims=(("image", 6), ("text", 5))):
    """SharedData of a random tiny graph with random modality features and a 2-user validation split."""
    from raymm.graph import EvalSplit, TrainGraph
    from raymm.methods.base import SharedData

    rng = np.random.default_rng(seed)
    key = np.unique(rng.integers(0, users, 500) * items + rng.integers(0, items, 500))
    graph = TrainGraph.from_interactions(key // items, key % items, users, items)
    feats = {m: rng.normal(size=(items, d)).astype(np.float32) for m, d in dims}
    return SharedData(graph, EvalSplit.from_interactions(np.array([0, 1]), np.array([2, 3])), None, feats)


def assert_batch_matches_full_graph(model, task, shared):
    """A model's outputs on a (full fan-out) batch equal its full-graph inference at the seeds: its
    fused embeddings and every modality's (a TeacherOutput-returning model, in eval mode)."""
    import torch

    batch = sample_batch(task, shared)
    out = model(batch)
    emb, modal = model.full(shared.graph.normalized_adjacency())
    assert torch.allclose(out.emb, emb[batch.seeds], atol=1e-5)
    for m in modal:
        assert torch.allclose(out.modal[m], modal[m][batch.seeds], atol=1e-5)
    return batch, emb, modal


def tiny_table(rows):
    """rows: list of (user, item, split)."""
    u, i, s = zip(*rows)
    return pa.table({"user_id": pa.array(u, pa.int64()), "item_id": pa.array(i, pa.int64()),
                     "split": pa.array(s, pa.string())})


@pytest.fixture
def tiny_rows():
    # 3 users, 4 items; every val/test user has training items.
    return [(0, 0, "train"), (0, 1, "train"), (0, 2, "val"), (1, 1, "train"), (1, 3, "train"),
            (1, 0, "test"), (2, 2, "train"), (2, 3, "val")]


@pytest.fixture
def tiny_features():
    rng = np.random.default_rng(0)
    return {"image": rng.normal(size=(4, 3)).astype(np.float32), "text": rng.normal(size=(4, 5)).astype(np.float32)}
