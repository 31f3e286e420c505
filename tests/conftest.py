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
