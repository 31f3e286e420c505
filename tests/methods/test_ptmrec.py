import math

import numpy as np
import pytest
import torch
from torch import nn

from raymm.methods.ptmrec.cache import ItemTextCache
from raymm.methods.ptmrec.losses import cosine_logits, similarity_kl


def test_similarity_kl_by_hand():
    t = torch.tensor([[0.0, 1.0, -math.inf], [2.0, 0.0, 0.0]])
    s = torch.tensor([[1.0, 0.0, -math.inf], [0.0, 0.0, 0.0]])
    tau = 0.5
    p0, q0 = np.array([1, math.e ** 2]) / (1 + math.e ** 2), np.array([math.e ** 2, 1]) / (1 + math.e ** 2)
    p1 = np.array([math.e ** 4, 1, 1]) / (math.e ** 4 + 2)
    q1 = np.full(3, 1 / 3)
    expect = (np.sum(p0 * np.log(p0 / q0)) + np.sum(p1 * np.log(p1 / q1))) / 2
    assert similarity_kl(t, s, tau).item() == pytest.approx(expect, rel=1e-5)
    assert similarity_kl(t, t, tau).item() == pytest.approx(0.0, abs=1e-7)
    s.requires_grad_(True)
    tt = t.clone().requires_grad_(True)
    similarity_kl(tt, s, tau).backward()
    assert tt.grad is None and torch.isfinite(s.grad).all()  # the stage-1 side is fixed


def test_cosine_logits_leave_an_item_out_of_its_own_distribution():
    x = torch.tensor([[1.0, 0.0], [3.0, 4.0], [0.0, 2.0]])
    sim = cosine_logits(x, x, exclude_diagonal=True)
    assert torch.isinf(sim.diagonal()).all()
    assert sim[0, 1].item() == pytest.approx(0.6) and sim[1, 2].item() == pytest.approx(0.8)


class _Toy(nn.Module):
    """An 'encoder' whose output is the mean token id times a learned scale."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, ids, mask):
        return (ids.float() * mask).mean(1, keepdim=True).repeat(1, 2) * self.scale


def test_cache_encodes_the_batch_fresh_and_refreshes_the_rest_every_n_steps():
    tokens = {"input_ids": np.arange(12).reshape(6, 2), "attention_mask": np.ones((6, 2), np.int64)}
    enc = _Toy()
    cache = ItemTextCache(tokens, every=2, chunk=4)
    table = cache.table(enc, torch.tensor([1, 4]))
    assert cache.refreshes == 1 and table.shape == (6, 2)
    table.sum().backward()
    assert enc.scale.grad.item() == pytest.approx(2 * (2.5 + 8.5))  # only the batch's rows carry gradients
    with torch.no_grad():
        enc.scale.fill_(2.0)
    cache.step(enc)  # step 1 of 2: no refresh
    table = cache.table(enc, torch.tensor([0]))
    assert table[0, 0].item() == pytest.approx(1.0)  # fresh: 0.5 x 2
    assert table[1, 0].item() == pytest.approx(2.5) and table[2, 0].item() == pytest.approx(4.5)  # stale
    cache.step(enc)  # step 2 of 2: everything re-encoded
    assert cache.refreshes == 2
    assert torch.allclose(cache.cache[:, 0], torch.tensor([1.0, 5.0, 9.0, 13.0, 17.0, 21.0]))
