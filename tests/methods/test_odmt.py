import math

import numpy as np
import pytest
import torch

from raymm.methods.odmt.losses import in_batch_ce, in_batch_logits, inclusion_log_prob, online_kd, ramp_up
from raymm.models.odmt import ODMTRec, id_aware_mask
from raymm.models.registry import from_payload, to_payload


def _model():
    torch.manual_seed(0)
    feats = {"image": np.random.default_rng(0).normal(size=(12, 6)).astype(np.float32),
             "text": np.random.default_rng(1).normal(size=(12, 5)).astype(np.float32)}
    return ODMTRec(12, 8, 4, feats, dropout=0.0).eval()


def test_id_aware_mask_modal_tokens_cannot_see_the_id_token():
    m = id_aware_mask(2)  # tokens [image, text, ID]
    assert m.tolist() == [[False, False, True], [False, False, True], [False, False, False]]
    model = _model()
    ids = torch.tensor([1, 5, 9])
    before = model.item_vectors(ids)
    with torch.no_grad():
        model.item_emb.weight[5] += 3.0  # change item 5's ID embedding
    after = model.item_vectors(ids)
    for b in ("image", "text"):  # the modal branches never see the ID token
        assert torch.allclose(before[b], after[b], atol=1e-6)
    assert not torch.allclose(before["id"][1], after["id"][1])  # the ID token attends to all
    assert torch.allclose(before["id"][0], after["id"][0], atol=1e-6)


def test_in_batch_logits_debias_and_mask_the_users_own_items():
    states = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # 3 target positions
    vec = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])  # candidates: items 2, 4, 7
    labels = torch.tensor([1, 2, 0])  # targets 4, 7, 2
    own = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
    log_q = torch.tensor([0.0, 0.0, 1.0])
    logits = in_batch_logits(states, vec, labels, own, log_q)
    assert logits[0].tolist() == [-math.inf, 0.0, 0.0]  # item 2 is in row 0's segment: not a negative
    assert logits[1].tolist() == [-math.inf, -math.inf, 0.0]  # its own target (7) stays: 1 - log_q 1
    assert logits[2].tolist() == [2.0, 3.0, 1.0]
    assert in_batch_ce(logits, labels).item() == pytest.approx(
        np.mean([-math.log(1 / 2), 0.0, -math.log(math.exp(2) / (math.exp(2) + math.exp(3) + math.exp(1)))]),
        rel=1e-5)


def test_inclusion_log_prob_is_log_popularity_for_rare_items_and_zero_for_items_every_batch_holds():
    pop = torch.tensor([1e-6, 1e-4, 0.05, 0.5])
    n = 10
    assert inclusion_log_prob(pop, n).tolist() == pytest.approx(np.log(1 - (1 - pop.double().numpy()) ** n).tolist(),
                                                                rel=1e-4)
    assert inclusion_log_prob(pop[:1], n).item() == pytest.approx(math.log(1e-6) + math.log(n), abs=1e-3)
    assert abs(inclusion_log_prob(pop[3:], 10_000).item()) < 1e-6  # surely in the batch: no penalty


def test_online_kd_and_ramp_up_by_hand():
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 2.0]])
    tau = 2.0
    p = torch.softmax(t / tau, -1)
    expect = tau ** 2 * -(p * torch.log_softmax(s / tau, -1)).sum()
    assert online_kd(s, t, tau).item() == pytest.approx(expect.item())
    assert ramp_up(0, 10) == pytest.approx(math.exp(-5)) and ramp_up(10, 10) == 1.0 and ramp_up(25, 10) == 1.0
    assert ramp_up(5, 10) == pytest.approx(math.exp(-1.25)) and ramp_up(3, 0) == 1.0


def test_inference_is_the_mean_of_branch_scores_and_payload_is_self_contained():
    model = _model()
    w = torch.tensor([[0, 2, 3, 4], [0, 0, 0, 7]])
    states, table = model.states(w), model.item_table()
    mean = sum(states[b] @ table[b].T for b in ("id", "image", "text")) / 3
    assert torch.allclose(model.score(w), mean, atol=1e-5)
    again = from_payload(to_payload(model))
    assert torch.allclose(again.eval().score(w), model.score(w), atol=1e-6)


def test_states_run_the_item_transformer_once_per_distinct_item():
    """Same states as running it at every window position (eval mode: no dropout draw to share)."""
    torch.manual_seed(0)
    feats = {"text": np.random.default_rng(0).random((30, 12)).astype("float32")}
    model = ODMTRec(30, 8, 6, feats).eval()
    windows = torch.tensor([[0, 0, 3, 7, 3, 2], [5, 5, 5, 1, 2, 3]])
    flat = model.item_vectors(windows.reshape(-1))
    per_position = {b: model.users[b](v.view(*windows.shape, -1), windows) for b, v in flat.items()}
    states = model.states(windows)
    for b in model.branches:
        assert torch.allclose(states[b], per_position[b], atol=1e-6)


@pytest.mark.parametrize("mask_history", [False, True])
def test_history_negatives_follow_the_evaluation_protocol(mask_history):
    """``history_negatives: as_eval``: items of a position's own segment stay in-batch negatives when
    ranking keeps history items (eval.mask_history false) and are dropped when ranking masks them,
    as ``keep`` / ``drop`` say; dropping negatives can only lower the CE."""
    from raymm.config import load_config
    from raymm.methods.odmt import item_popularity
    from raymm.methods.registry import get_method
    from tests.methods.test_kdsr import _task

    base, seq = _task()
    base.shared.extras["item_pop"] = item_popularity(base.shared.graph)
    rows = {"user_id": seq.user_of(np.arange(len(seq.items)))[seq.split == 0], "item_id": seq.items[seq.split == 0]}
    ce = {}
    for mode in ("as_eval", "keep", "drop"):
        cfg = load_config("conf/odmt.yaml", ["model.embedding_dim=8", "method.odmt.max_len=4", "method.odmt.dropout=0",
                                             "method.odmt.kd_weight=0", f"method.odmt.history_negatives={mode}",
                                             f"eval.mask_history={str(mask_history).lower()}"])
        (stage,) = get_method("odmt").stages(cfg)
        torch.manual_seed(0)
        task = stage.task(cfg, base.shared)
        task.setup(0, 1, "cpu")
        task.start_epoch(0, 0)
        loss, parts = task.loss(task.module, task.batch_from_rows(rows))
        ce[mode] = parts["ce_id"]
    assert ce["drop"] < ce["keep"]
    assert ce["as_eval"] == pytest.approx(ce["drop"] if mask_history else ce["keep"], rel=1e-6)
