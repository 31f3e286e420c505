import math

import pytest
import torch

from raymm.losses import bpr_loss, l2_penalty
from raymm.metrics import hit_at_k, ndcg_at_k, precision_at_k, recall_at_k


def test_metrics_against_hand_computed_values():
    # user 0: relevant at ranks 0 and 2, |relevant| = 3; user 1: no hit, |relevant| = 1.
    hits = torch.tensor([[True, False, True, False], [False, False, False, False]])
    num_rel = torch.tensor([3, 1])
    assert recall_at_k(hits, num_rel, 2).tolist() == pytest.approx([1 / 3, 0.0])
    assert recall_at_k(hits, num_rel, 4).tolist() == pytest.approx([2 / 3, 0.0])
    assert precision_at_k(hits, num_rel, 4).tolist() == pytest.approx([0.5, 0.0])
    assert hit_at_k(hits, num_rel, 1).tolist() == [1.0, 0.0]
    dcg = 1 / math.log2(2) + 1 / math.log2(4)
    idcg = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)  # min(3, 4) = 3 ideal positions
    assert ndcg_at_k(hits, num_rel, 4).tolist() == pytest.approx([dcg / idcg, 0.0])
    # at k = 2 the ideal list has min(3, 2) = 2 positions
    assert ndcg_at_k(hits, num_rel, 2)[0].item() == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_ndcg_single_relevant_at_rank_one():
    hits = torch.tensor([[False, True, False]])
    assert ndcg_at_k(hits, torch.tensor([1]), 3).item() == pytest.approx(1 / math.log2(3))


def test_bpr_hand_computed():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    p = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    n = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    # differences: 2 - 1 = 1 ; 2 - 6 = -4
    expected = -(math.log(1 / (1 + math.exp(-1))) + math.log(1 / (1 + math.exp(4)))) / 2
    assert bpr_loss(u, p, n).item() == pytest.approx(expected, rel=1e-6)
    assert bpr_loss(u, p, n.unsqueeze(1)).item() == pytest.approx(expected, rel=1e-6)


def test_bpr_gradient_direction():
    u = torch.tensor([[1.0, 1.0]], requires_grad=True)
    p = torch.tensor([[1.0, 0.0]])
    n = torch.tensor([[0.0, 1.0]])
    bpr_loss(u, p, n).backward()
    # descending the loss moves u towards the positive and away from the negative
    assert u.grad[0, 0] < 0 < u.grad[0, 1]


def test_l2_penalty():
    a = torch.ones(2, 3)
    assert l2_penalty(a, 2 * a).item() == pytest.approx((6 + 24) / 4)
