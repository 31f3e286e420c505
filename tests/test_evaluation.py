import numpy as np
import pytest
import torch

from raymm.evaluation import finalize, metric_names, metric_sums, topk_excluding, topk_items
from raymm.graph import EvalSplit, TrainGraph


def _setup():
    # 2 users, 5 items; user 0 trained on item 0, user 1 on item 4.
    graph = TrainGraph.from_interactions(np.array([0, 1]), np.array([0, 4]), 2, 5)
    users = torch.tensor([[1.0], [1.0]])
    items = torch.tensor([[5.0], [4.0], [3.0], [2.0], [1.0]])  # scores: item 0 highest
    return graph, users, items


def test_training_items_are_masked():
    graph, users, items = _setup()
    top = topk_items(users, items, np.array([0, 1]), graph, 3)
    assert top[0].tolist() == [1, 2, 3]  # item 0 masked for user 0
    assert top[1].tolist() == [0, 1, 2]


def test_metric_sums_hand_computed_and_sharding_reduces_exactly():
    graph, users, items = _setup()
    split = EvalSplit.from_interactions(np.array([0, 1, 1]), np.array([2, 3, 0]))
    ks = [1, 2]
    full = finalize(metric_sums(users, items, split, graph, ks), ks)
    # user 0 ranking [1,2,3,..], relevant {2}: recall@1 0, recall@2 1
    # user 1 ranking [0,1,2,3], relevant {0,3}: recall@1 .5, recall@2 .5
    assert full["recall@1"] == pytest.approx(0.25)
    assert full["recall@2"] == pytest.approx(0.75)
    assert full["hit@1"] == pytest.approx(0.5)
    assert full["precision@2"] == pytest.approx((0.5 + 0.5) / 2)
    shards = sum(metric_sums(users, items, split.shard(r, 2), graph, ks) for r in range(2))
    assert finalize(shards, ks) == pytest.approx(full)
    assert set(full) == set(metric_names(ks))


def test_nan_scores_rank_lowest_and_are_never_hits():
    graph, users, items = _setup()
    split = EvalSplit.from_interactions(np.array([0, 1, 1]), np.array([2, 3, 0]))
    nan_items = torch.full_like(items, float("nan"))
    metrics = finalize(metric_sums(users, nan_items, split, graph, [1, 2]), [1, 2])
    assert all(v == 0.0 for v in metrics.values())  # a diverged model scores nothing
    partly = items.clone()
    partly[1] = float("nan")  # item 1 is NaN: it drops below every finite item
    assert topk_items(users, partly, np.array([0]), graph, 3)[0].tolist() == [2, 3, 4]


@pytest.mark.parametrize("score_block", [1, 7, 64, 10_000])
def test_item_chunks_with_a_running_top_k_equal_one_pass(score_block):
    """Bounded-memory ranking (item chunks of max(k, score_block // users) columns) returns exactly
    the one-pass top-k, masks included, also when a chunk is shorter than k."""
    rng = np.random.default_rng(0)
    users, items = 13, 53
    u = torch.from_numpy(rng.normal(size=(users, 4)).astype(np.float32))
    v = torch.from_numpy(rng.normal(size=(items, 4)).astype(np.float32))
    v[5] = float("nan")
    key = np.unique(rng.integers(0, users, 200) * items + rng.integers(0, items, 200))
    g = TrainGraph.from_interactions(key // items, key % items, users, items)
    ids = np.arange(users)
    one_i, one_s = topk_excluding(u, v, ids, g.user_items(), 10, 4, True, score_block=10**9)
    got_i, got_s = topk_excluding(u, v, ids, g.user_items(), 10, 4, True, score_block=score_block)
    assert torch.allclose(got_s, one_s, atol=1e-5)  # a narrower product may round differently
    finite = one_s > -torch.inf  # masked and NaN items tie at -inf; their order is free
    assert torch.equal(got_i[finite], one_i[finite])
    indptr, train = g.user_items()
    for r in range(users):
        assert not set(got_i[r][finite[r]].tolist()) & set(train[indptr[r]:indptr[r + 1]].tolist())
