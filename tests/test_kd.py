"""Each distillation loss against a hand-computed tiny example."""

import math

import pytest
import torch

from raymm.kd import embedding_kd, listwise_kd, pairwise_kd, parity_listwise_kd, parity_pairwise_kd, sce


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _bkl(p, q):
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


@pytest.mark.parametrize("tau", [1.0, 0.5, 2.0])
def test_pairwise_kd_hand_computed(tau):
    t = torch.tensor([2.0, -1.0])
    s = torch.tensor([0.5, 0.5])
    expected = (_bkl(_sig(2 / tau), _sig(0.5 / tau)) + _bkl(_sig(-1 / tau), _sig(0.5 / tau))) / 2
    assert pairwise_kd(t, s, tau).item() == pytest.approx(expected, rel=1e-5)
    assert pairwise_kd(t, t, tau).item() == pytest.approx(0.0, abs=1e-7)


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


@pytest.mark.parametrize("tau", [1.0, 2.0])
@pytest.mark.parametrize("reweight", [True, False])
def test_listwise_kd_hand_computed(tau, reweight):
    # one user, target + K = 2 negatives, two modalities
    zt = {"a": [3.0, 1.0, 0.0], "b": [0.5, 1.0, 2.0]}
    zs = [1.0, 0.0, 1.0]
    ps = _softmax([v / tau for v in zs])
    bs, qs = [ps[0], 1 - ps[0]], _softmax([v / tau for v in zs[1:]])
    expected = 0.0
    for z in zt.values():
        pt = _softmax([v / tau for v in z])
        bt, qt = [pt[0], 1 - pt[0]], _softmax([v / tau for v in z[1:]])
        w = bt[1] if reweight else 1.0  # the teacher's non-target mass re-weights the non-target term
        expected += _kl(bt, bs) + w * _kl(qt, qs)
    expected *= tau ** 2
    got = listwise_kd({m: torch.tensor([z]) for m, z in zt.items()}, torch.tensor([zs]), tau, reweight)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_reweighting_damps_confident_modalities():
    # a teacher very sure of the target passes almost none of its ranking of the negatives
    student = torch.tensor([[0.0, 0.0, 0.0]])
    confident = {"m": torch.tensor([[20.0, 5.0, -5.0]])}
    on = listwise_kd(confident, student, 1.0, reweight=True)
    off = listwise_kd(confident, student, 1.0, reweight=False)
    assert on < off


def test_sce_and_embedding_kd():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[1.0, 1.0], [0.0, -2.0]])
    c0, c1 = 1 / math.sqrt(2), -1.0
    assert sce(x, y, 2).item() == pytest.approx(((1 - c0) ** 2 + (1 - c1) ** 2) / 2, rel=1e-6)
    assert sce(x, y, 1).item() == pytest.approx(((1 - c0) + (1 - c1)) / 2, rel=1e-6)
    assert embedding_kd({"a": x, "b": y}, x, 2).item() == pytest.approx(sce(y, x, 2).item(), rel=1e-6)


def test_parity_forms_match_public_code():
    t = torch.tensor([2.0, -1.0])
    s = torch.tensor([0.5, 0.5])
    tv, sv = -torch.nn.functional.logsigmoid(t), -torch.nn.functional.logsigmoid(s)
    expected = (tv * (tv.log() - sv)).mean()  # nn.KLDivLoss()(student values, teacher values)
    assert parity_pairwise_kd(t, s).item() == pytest.approx(expected.item(), rel=1e-6)
    zt, zs = torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    a = -(zt.softmax(-1) + 1e-8).log()
    b = -(zs.softmax(-1) + 1e-8).log()
    assert parity_listwise_kd({"m": zt}, zs).item() == pytest.approx((a * (a.log() - b)).mean().item(), rel=1e-5)
