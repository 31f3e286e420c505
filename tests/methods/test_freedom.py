"""FREEDOM: the frozen kNN item graph by hand, degree-sensitive pruning, sampled = full propagation,
the item-item convolution on neighbourhoods, the loss's gradients, save/load."""

import numpy as np
import pytest
import torch

from raymm.config import build_config
from raymm.graph import TrainGraph
from raymm.methods.freedom import precompute_item_graph
from raymm.methods.freedom.tasks import FreedomTask
from raymm.models.freedom import degree_sensitive_prune, item_knn_graph
from raymm.models.registry import from_payload, to_payload
from tests.conftest import assert_batch_matches_full_graph, sample_batch, tiny_multimodal


def _shared():
    return tiny_multimodal()


def _cfg(*extra):
    cfg = build_config({}, ["method.name=freedom", "model.embedding_dim=8", "train.fanouts=[4,4]",
                            *[e if e.startswith(("train.", "model.")) else f"method.freedom.{e}" for e in extra]])
    return cfg


def _task(*extra, shared=None):
    shared = shared or _shared()
    cfg = _cfg(*extra)
    precompute_item_graph(cfg.method.freedom, shared)
    return FreedomTask(cfg, shared), shared


def test_knn_item_graph_by_hand():
    # image: items 0, 1 point the same way, 2 and 3 the other; text: 0 with 2, 1 with 3
    feats = {"image": np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], np.float32),
             "text": np.array([[1, 0], [0, 1], [1, 0.1], [0.1, 1]], np.float32)}
    indptr, indices, values = item_knn_graph(feats, k=2, weights={"image": 1.0, "text": 3.0})
    dense = np.zeros((4, 4), np.float32)
    for i in range(4):
        dense[i, indices[indptr[i]:indptr[i + 1]]] = values[indptr[i]:indptr[i + 1]]
    a_img = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], np.float32)
    a_txt = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]], np.float32)
    # each row sums to k = 2, so D^-1/2 A D^-1/2 = A / 2; alpha = (0.25, 0.75); the diagonal adds up
    assert np.allclose(dense, 0.25 * a_img / 2 + 0.75 * a_txt / 2)
    assert np.allclose(dense.sum(1), 1.0)


def test_degree_sensitive_pruning_keeps_the_share_and_prefers_low_degree_edges():
    # user 0 links every item; users 1..9 link item 0 only: edges (0, 0) and (u, 0) touch a hub item
    users = np.array([0] * 10 + list(range(1, 10)))
    items = np.array(list(range(10)) + [0] * 9)
    g = TrainGraph.from_interactions(users, items, 10, 10)
    kept = {}
    for s in range(400):
        p = degree_sensitive_prune(g, 0.5, np.random.default_rng(s))
        assert len(p.indices) == 2 * int(19 * 0.5)  # both directions of 9 edges
        pu, pi = p.user_items()
        edges = set(zip(np.repeat(np.arange(10), np.diff(pu)).tolist(), pi.tolist()))
        assert edges <= set(zip(users.tolist(), items.tolist()))
        for e in edges:
            kept[e] = kept.get(e, 0) + 1
    # 1/sqrt(d_u d_i): (0, 5) has 1/sqrt(10 * 1), (3, 0) has 1/sqrt(1 * 10), (0, 0) has 1/sqrt(10 * 10)
    assert kept[(0, 0)] < 0.6 * min(kept[(0, 5)], kept[(3, 0)])
    assert degree_sensitive_prune(g, 0.0, np.random.default_rng(0)) is g


@pytest.mark.parametrize("propagation", ["sampled", "full"])
def test_full_fanout_batch_equals_full_graph_inference(propagation):
    task, shared = _task("train.fanouts=[-1,-1]", f"train.propagation={propagation}", "item_layers=2")
    batch, emb, modal = assert_batch_matches_full_graph(task.module.eval(), task, shared)
    users = batch.seeds[batch.seeds < shared.graph.num_users]
    assert torch.equal(modal["image"][users], emb[users])  # a user's modality embedding is e_u


def test_loss_trains_ids_and_projections_and_each_epoch_prunes_anew():
    task, shared = _task("edge_drop=0.5", "modal_weight=0.1", "train.propagation=sampled")
    task.setup(0, 1, "cpu")
    task.start_epoch(0, 0)
    first = task.neighbours
    e0 = first.g.num_edges()
    assert e0 == 2 * int(shared.graph.user_items()[1].size * 0.5)
    task.start_epoch(0, 1)
    assert not np.array_equal(first.g.edges()[0].numpy(), task.neighbours.g.edges()[0].numpy())
    assert task.adj.nnz() == len(shared.graph.indices)  # evaluation keeps every edge
    rows = {"user_id": np.repeat(np.arange(5), 2), "item_id": shared.graph.user_items()[1][:10]}
    loss, parts = task.loss(task.module, task.batch_from_rows(rows))
    loss.backward()
    assert {"bpr", "bpr_image", "bpr_text"} <= set(parts)
    for name, p in task.module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_saved_model_rebuilds_its_item_graph_and_ranks_the_same():
    task, shared = _task("knn_k=4", "modality_weights={image: 1.0, text: 2.0}")
    adj = shared.graph.normalized_adjacency()
    users, items = task.module.full_embeddings(adj)
    again = from_payload(to_payload(task.module), shared.features)
    u2, i2 = again.full_embeddings(adj)
    assert torch.allclose(users, u2) and torch.allclose(items, i2)
    assert not any(k.startswith(("ii_", "feat_")) for k in to_payload(task.module)["state_dict"])
