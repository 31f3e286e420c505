"""PromptMM teacher, prompt and stage-2 gradient flow, on tiny synthetic graphs."""

import numpy as np
import pytest
import torch

from raymm.config import build_config
from raymm.graph import TrainGraph
from tests.conftest import sample_batch
from raymm.models.extractors import StudentExtractor
from raymm.models.prompt import SoftPrompt, hard_tokens, pca
from raymm.methods.base import SharedData
from raymm.methods.promptmm.tasks import DistillTask, TeacherTask


def _shared(num_modalities, users=40, items=30, seed=0):
    rng = np.random.default_rng(seed)
    key = np.unique(rng.integers(0, users, 500) * items + rng.integers(0, items, 500))
    graph = TrainGraph.from_interactions(key // items, key % items, users, items)
    feats = {f"m{j}": rng.normal(size=(items, 6 + j)).astype(np.float32) for j in range(num_modalities)}
    return SharedData(graph, None, None, feats, {"hard_tokens": hard_tokens(feats, graph, 4)})


def _cfg(*extra):
    return build_config({}, ["method.name=promptmm", "model.embedding_dim=8", "method.promptmm.prompt.size=4",
                             "train.fanouts=[4,4]", "method.promptmm.teacher.dropout=0.0",
                             "method.promptmm.prompt.dropout=0.0",
                             *[e if e.startswith("train.") else f"method.promptmm.{e}" for e in extra]])


def test_pca_is_deterministic_and_ordered():
    x = np.random.default_rng(0).normal(size=(50, 6)) * np.array([5, 1, 3, 0.1, 0.2, 2])
    a, b = pca(x, 3), pca(x.copy(), 3)
    assert np.array_equal(a, b)
    assert a.var(0)[0] > a.var(0)[1] > a.var(0)[2]
    with pytest.raises(ValueError, match="exceeds the feature dimension"):
        pca(x, 7)


def test_user_hard_tokens_are_means_of_their_items():
    shared = _shared(2)
    h_user, h_item = shared.extras["hard_tokens"]
    indptr, items = shared.graph.user_items()
    u = int(np.argmax(np.diff(indptr)))
    assert np.allclose(h_user[u], h_item[items[indptr[u]:indptr[u + 1]]].mean(0), atol=1e-6)


@pytest.mark.parametrize("num_modalities", [1, 3])
def test_teacher_runs_with_any_number_of_modalities(num_modalities):
    shared = _shared(num_modalities)
    task = TeacherTask(_cfg(), shared)
    loss, parts = task.loss(task.module, sample_batch(task, shared))
    loss.backward()
    assert torch.isfinite(loss)
    assert {f"bpr_m{j}" for j in range(num_modalities)} <= set(parts)
    assert all(p.grad is not None for n, p in task.module.named_parameters())


@pytest.mark.parametrize("propagation", ["sampled", "full"])
def test_full_fanout_sampled_teacher_equals_full_graph_teacher(propagation):
    shared = _shared(2)
    task = TeacherTask(_cfg("train.fanouts=[-1,-1]", f"train.propagation={propagation}"), shared)
    teacher = task.module.eval()
    batch = sample_batch(task, shared)
    assert (batch.nodes is not None) == (propagation == "full")
    out = teacher(batch)
    emb, modal = teacher.full(shared.graph.normalized_adjacency())
    assert torch.allclose(out.emb, emb[batch.seeds], atol=1e-5)
    for m in modal:
        assert torch.allclose(out.modal[m], modal[m][batch.seeds], atol=1e-5)


@pytest.mark.parametrize("extractor", ["linear", "sgfd"])
@pytest.mark.parametrize("propagation", ["sampled", "full"])
def test_eval_mode_factored_prompt_equals_the_equation(propagation, extractor):
    """In eval mode f_R runs in factored form (no P_i^T X^m product, a linear f_R's fixed part
    reused); it gives the same outputs and prompt gradients as the plain equation, which train mode
    runs (dropouts are 0 here), and its cache follows in-place changes of what it was built from."""
    shared = _shared(2)
    task = TeacherTask(_cfg(f"train.propagation={propagation}"), shared)
    teacher = task.module
    if extractor == "sgfd":  # a non-linear f_R (SGFD's, there without a prompt): only the prompt term factors
        torch.manual_seed(1)
        for m, x in shared.features.items():
            teacher.reducers[m] = StudentExtractor(x.shape[1], teacher.dim)
    for n, p in teacher.named_parameters():
        p.requires_grad_(n.startswith("prompt."))  # as in stage 2: only the prompt learns
    batch = sample_batch(task, shared)
    results = []
    for mode in (True, False, False):  # train mode (the equation), eval mode twice (the cache's hit)
        teacher.train(mode)
        teacher.zero_grad()
        torch.manual_seed(0)
        out = teacher(batch)
        (out.emb.square().sum() + sum(f.sum() for f in out.modal.values())).backward()
        results.append((out, {n: p.grad.clone() for n, p in teacher.named_parameters() if p.grad is not None}))
    (ref, ref_grads), *evals = results
    for out, grads in evals:
        assert torch.allclose(out.emb, ref.emb, atol=1e-5)
        for m in ref.modal:
            assert torch.allclose(out.modal[m], ref.modal[m], atol=1e-5)
        assert grads.keys() == ref_grads.keys() and {"prompt.item.weight", "prompt.item.bias"} <= grads.keys()
        for n in grads:
            assert torch.allclose(grads[n], ref_grads[n], rtol=1e-4, atol=1e-5), n
    with torch.no_grad():  # the fixed part follows the reducer's weights (stage 1 evaluates between steps)
        for p in teacher.reducers.parameters():
            p.add_(0.1)
    m = sorted(ref.modal)[0]
    modal = [teacher.train(mode)(batch).modal[m].detach() for mode in (False, True)]
    assert not torch.allclose(modal[0], ref.modal[m], atol=1e-3)
    assert torch.allclose(modal[0], modal[1], atol=1e-5)


@pytest.mark.parametrize("parity", [False, True])
def test_stage2_loss_is_the_same_with_full_and_full_fanout_sampled_propagation(parity):
    """Full propagation carries every node as a seed; the KD terms still cover the batch's own nodes."""
    shared = _shared(2)
    teacher = TeacherTask(_cfg(f"parity={str(parity).lower()}"), shared)
    shared.extras["teacher"] = teacher.payload()
    losses = []
    for propagation in ("sampled", "full"):
        torch.manual_seed(0)
        task = DistillTask(_cfg("train.fanouts=[-1,-1]", f"train.propagation={propagation}",
                                f"parity={str(parity).lower()}"), shared)
        task.module.eval()
        losses.append(task.loss(task.module, sample_batch(task, shared))[1])
    assert losses[0].keys() == losses[1].keys() and {"kd_pair", "kd_list", "kd_emb"} <= losses[0].keys()
    for k in losses[0]:
        assert losses[0][k] == pytest.approx(losses[1][k], rel=1e-4, abs=1e-6), k


def test_stage2_gradient_reaches_prompt_not_teacher():
    shared = _shared(2)
    shared.extras["teacher"] = TeacherTask(_cfg(), shared).payload()
    task = DistillTask(_cfg(), shared)
    before = {n: p.detach().clone() for n, p in task.module.teacher.named_parameters()}
    opt = task.optimizer(list(task.module.parameters()))
    task.module.train()
    assert not task.module.teacher.training  # targets come from the teacher in eval mode
    loss, parts = task.loss(task.module, sample_batch(task, shared))
    opt.zero_grad()
    loss.backward()
    grads = {n: p.grad for n, p in task.module.teacher.named_parameters()}
    assert grads["prompt.item.weight"] is not None and grads["prompt.item.weight"].abs().sum() > 0
    assert grads["prompt.user.weight"] is not None and grads["prompt.user.weight"].abs().sum() > 0
    assert all(g is None for n, g in grads.items() if not n.startswith("prompt."))
    assert task.module.student.embedding.weight.grad.abs().sum() > 0
    opt.step()
    after = dict(task.module.teacher.named_parameters())
    assert not torch.equal(before["prompt.item.weight"], after["prompt.item.weight"])
    assert all(torch.equal(before[n], after[n]) for n in before if not n.startswith("prompt."))
    assert {"kd_pair", "kd_list", "kd_emb"} <= set(parts)


@pytest.mark.parametrize("propagation", ["sampled", "full"])
def test_a_frozen_teacher_is_computed_once_over_the_full_graph_and_looked_up(propagation, monkeypatch):
    shared = _shared(2)
    shared.extras["teacher"] = TeacherTask(_cfg(), shared).payload()
    task = DistillTask(_cfg("distill.prompt_trainable=false", f"train.propagation={propagation}"), shared)
    assert task.module.frozen and task.module.targets is None
    task.module.train()
    teacher = task.module.teacher
    emb, modal = teacher.eval().full(shared.graph.normalized_adjacency())
    calls = []
    monkeypatch.setattr(type(teacher), "forward", lambda self, batch: calls.append(batch))
    for _ in range(2):
        batch = sample_batch(task, shared)
        loss, parts = task.loss(task.module, batch)
        _, _, out = task.module(batch)
        assert torch.equal(out.emb, emb[batch.seeds])  # the full-graph outputs, row for row
        assert all(torch.equal(out.modal[m], modal[m][batch.seeds]) for m in modal)
        loss.backward()
    assert not calls  # no teacher forward per step
    assert {"kd_pair", "kd_list", "kd_emb"} <= set(parts)
    assert all(p.grad is None for p in teacher.parameters())
    assert task.module.student.embedding.weight.grad.abs().sum() > 0
    # A trainable prompt (paper mode) keeps the per-step teacher forward; parity keeps teacher dropout.
    assert not DistillTask(_cfg(), shared).module.frozen
    assert not DistillTask(_cfg("parity=true"), shared).module.frozen


def test_parity_mode_freezes_prompt_and_keeps_teacher_dropout():
    shared = _shared(2)
    shared.extras["teacher"] = TeacherTask(_cfg(), shared).payload()
    task = DistillTask(_cfg("parity=true"), shared)
    task.module.train()
    assert task.module.teacher.training
    loss, _ = task.loss(task.module, sample_batch(task, shared))
    loss.backward()
    assert all(p.grad is None for p in task.module.teacher.parameters())


@pytest.mark.parametrize("off", ["distill.pair_weight=0", "distill.list_weight=0", "distill.emb_weight=0"])
def test_each_kd_term_can_be_switched_off(off):
    shared = _shared(1)
    shared.extras["teacher"] = TeacherTask(_cfg(), shared).payload()
    task = DistillTask(_cfg(off), shared)
    _, parts = task.loss(task.module, sample_batch(task, shared))
    term = {"pair": "kd_pair", "list": "kd_list", "emb": "kd_emb"}[off.split(".")[1].split("_")[0]]
    assert term not in parts and len({"kd_pair", "kd_list", "kd_emb"} & set(parts)) == 2


def test_without_prompt_ablation():
    shared = _shared(2)
    task = TeacherTask(_cfg("prompt.enabled=false"), shared)
    assert task.module.prompt is None
    loss, parts = task.loss(task.module, sample_batch(task, shared))
    assert "prompt_bpr" not in parts and torch.isfinite(loss)


def test_soft_prompt_node_ids():
    prompt = SoftPrompt(torch.randn(3, 2), torch.randn(4, 2), dim=5)
    ids = torch.tensor([0, 2, 3, 6])
    out = prompt(ids)
    assert out.shape == (4, 5)
    assert torch.allclose(out[1], prompt.users(torch.tensor([2]))[0])
    assert torch.allclose(out[3], prompt.items(torch.tensor([3]))[0])


def test_registered_teacher_carries_the_prompt_as_stage_2_left_it():
    from raymm.methods.promptmm import METHOD

    shared = _shared(2)
    teacher = TeacherTask(_cfg(), shared).payload()
    shared.extras["teacher"] = teacher
    task = DistillTask(_cfg(), shared)
    with torch.no_grad():
        task.module.teacher.prompt.item.weight.add_(1.0)  # what stage 2's updates do to the prompt
    served = METHOD.served_extras({"teacher": teacher, "student": task.payload()})["teacher"]
    assert torch.equal(served["state_dict"]["prompt.item.weight"], task.module.teacher.prompt.item.weight)
    assert not torch.equal(teacher["state_dict"]["prompt.item.weight"], served["state_dict"]["prompt.item.weight"])
    assert all(torch.equal(teacher["state_dict"][k], v) for k, v in served["state_dict"].items() if "prompt" not in k)


def test_a_smaller_student_learns_through_a_projection_for_the_embedding_kd():
    from raymm.kd import embedding_kd

    shared = _shared(2)
    shared.extras["teacher"] = TeacherTask(_cfg("teacher.embedding_dim=12"), shared).payload()
    assert shared.extras["teacher"]["hparams"]["dim"] == 12
    task = DistillTask(_cfg("teacher.embedding_dim=12"), shared)  # the student: model.embedding_dim=8
    proj = task.module.project
    assert (proj.in_features, proj.out_features) == (8, 12) and proj.bias is None
    task.module.train()
    batch = sample_batch(task, shared)
    loss, parts = task.loss(task.module, batch)
    loss.backward()
    assert proj.weight.grad.abs().sum() > 0 and task.module.student.embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in task.module.teacher.named_parameters() if not n.startswith("prompt."))
    with torch.no_grad():  # L_emb = sum_m SCE(f^m, W e^S) over the batch's own nodes
        emb, _, t = task.module(batch)
        expect = embedding_kd({m: batch.own(f) for m, f in t.modal.items()}, proj(batch.own(emb)), 2.0)
    assert parts["kd_emb"] == pytest.approx(expect.item(), rel=1e-5)
    served = task.payload()
    assert served["hparams"]["dim"] == 8 and not any("project" in k for k in served["state_dict"])
    # without the embedding KD nothing needs the map, and an unused parameter would stall DDP
    assert DistillTask(_cfg("teacher.embedding_dim=12", "distill.emb_weight=0"), shared).module.project is None


@pytest.mark.parametrize("extra, match", [(("teacher.embedding_dim=12", "parity=true"), "parity"),
                                          (("teacher.embedding_dim=4", "distill.init_from_teacher=true"),
                                           "cannot fill a larger student")])
def test_a_teacher_size_that_cannot_work_is_refused(extra, match):
    from types import SimpleNamespace

    from raymm.errors import InputError
    from raymm.methods.promptmm import METHOD

    dataset = SimpleNamespace(uri="d", manifest=SimpleNamespace(modalities={"m0": SimpleNamespace(dim=6)}))
    METHOD.check(_cfg("teacher.embedding_dim=12", "distill.init_from_teacher=true"), dataset)  # larger: fine
    with pytest.raises(InputError, match=match):
        METHOD.check(_cfg(*extra), dataset)


def test_a_smaller_student_starts_from_the_teachers_top_singular_directions():
    from raymm.methods.promptmm.tasks import reduce_to

    torch.manual_seed(0)
    low = torch.randn(50, 3) @ torch.randn(3, 12)  # rank 3 in 12 dimensions
    small = reduce_to(low, 3)
    assert small.shape == (50, 3) and torch.allclose(small @ small.T, low @ low.T, atol=1e-3)  # scores kept
    emb = torch.randn(50, 12)
    assert reduce_to(emb, 12) is emb
    u, s, vh = torch.linalg.svd(emb, full_matrices=False)
    best = (u[:, :4] * s[:4]) @ (u[:, :4] * s[:4]).T  # the best rank-4 approximation of emb emb^T
    assert torch.allclose(reduce_to(emb, 4) @ reduce_to(emb, 4).T, best, atol=1e-4)


def test_a_freedom_teacher_trains_in_stage_1_and_teaches_a_smaller_student():
    from raymm.methods.freedom import precompute_item_graph
    from raymm.models.freedom import Freedom

    from raymm.graph import EvalSplit

    shared = _shared(2)
    shared.val = EvalSplit.from_interactions(np.array([0]), np.array([1]))
    cfg = build_config({}, ["method.name=promptmm", "model.embedding_dim=8", "train.fanouts=[4,4]",
                            "train.propagation=sampled", "method.promptmm.prompt.enabled=false",
                            *[f"method.promptmm.teacher.{e}" for e in (
                                "backbone=freedom", "embedding_dim=16", "freedom.knn_k=3", "freedom.modal_weight=0.5")]])
    precompute_item_graph(cfg.method.promptmm.teacher.freedom, shared)
    stage1 = TeacherTask(cfg, shared)
    assert isinstance(stage1.module, Freedom) and stage1.module.dim == 16
    stage1.setup(0, 1, "cpu")
    stage1.start_epoch(0, 0)  # FREEDOM's pruned graph: 20% of the edges kept (edge_drop 0.8)
    assert stage1.neighbours.g.num_edges() == 2 * int(len(shared.graph.indices) // 2 * 0.2)
    loss, parts = stage1.loss(stage1.module, sample_batch(stage1, shared))
    loss.backward()
    assert {"bpr", "bpr_m0", "bpr_m1"} == set(parts)
    assert stage1.module.projections["m0"].weight.grad.abs().sum() > 0

    shared.extras["teacher"] = stage1.payload()
    task = DistillTask(cfg, shared)
    assert isinstance(task.module.teacher, Freedom) and task.module.project.out_features == 16
    task.module.train()
    loss, parts = task.loss(task.module, sample_batch(task, shared))
    loss.backward()
    assert {"kd_pair", "kd_list", "kd_emb"} <= set(parts)
    assert all(p.grad is None for p in task.module.teacher.parameters())  # no prompt: nothing of it learns
    assert task.module.student.embedding.weight.grad.abs().sum() > 0


def test_teacher_backbone_options_that_do_nothing_are_errors():
    from raymm.configbase import ConfigError

    for extra, match in ((["teacher.backbone=freedom"], "no soft prompt"),
                         (["teacher.freedom.knn_k=3"], "do nothing with backbone=promptmm"),
                         (["teacher.backbone=freedom", "prompt.enabled=false", "teacher.model_cat_rate=0.5"],
                          "model_cat_rate=0.5 does nothing"),
                         (["teacher.backbone=freedom", "prompt.enabled=false", "parity=true"], "parity")):
        with pytest.raises(ConfigError, match=match):
            build_config({}, ["method.name=promptmm", *[f"method.promptmm.{e}" for e in extra]])


def test_lazy_adam_student_gets_row_sparse_gradients_and_the_prompt_dense_ones():
    from raymm.optim import LazyAdam
    from tests.conftest import sample_batch

    shared = _shared(2)
    shared.extras["teacher"] = TeacherTask(_cfg(), shared).payload()
    task = DistillTask(_cfg("train.optimizer=lazy_adam", "train.propagation=sampled", "train.fanouts=[1,1]"), shared)
    opt = task.optimizer(task.module.parameters())
    assert isinstance(opt, LazyAdam)
    task.module.train()
    loss, _ = task.loss(task.module, sample_batch(task, shared, size=2))
    loss.backward()
    student = task.module.student.embedding.weight
    prompt = task.module.teacher.prompt.item.weight
    assert student.grad.is_sparse and not prompt.grad.is_sparse
    before = student.detach().clone(), prompt.detach().clone()
    opt.step()
    rows = student.grad.coalesce().indices()[0]
    moved = (student.detach() != before[0]).any(dim=1).nonzero().flatten()
    assert set(moved.tolist()) <= set(rows.tolist()) and len(moved) > 0  # only the rows the batch read
    assert not torch.equal(prompt.detach(), before[1])  # the prompt keeps learning (dense Adam step)
