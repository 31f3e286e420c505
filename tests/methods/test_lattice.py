"""LATTICE: the item graphs against a dense computation by hand, sampled = full propagation, the
learned graph's gradients only at its (per-epoch) build, save/load, and as PromptMM's teacher."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raymm.config import build_config
from raymm.methods.lattice.tasks import LatticeTask
from raymm.models.registry import from_payload, to_payload
from tests.conftest import assert_batch_matches_full_graph, sample_batch, tiny_multimodal


def _shared():
    return tiny_multimodal()


def _task(*extra, shared=None):
    shared = shared or _shared()
    cfg = build_config({}, ["method.name=lattice", "model.embedding_dim=8", "train.fanouts=[4,4]",
                            *[e if e.startswith(("train.", "model.")) else f"method.lattice.{e}" for e in extra]])
    return LatticeTask(cfg, shared), shared


def _dense_knn(x, k):
    """Row-wise top-k cosine similarities (0 elsewhere), then D^-1/2 S D^-1/2 with row sums."""
    sim = F.normalize(x, dim=1) @ F.normalize(x, dim=1).T
    top = torch.topk(sim, k, dim=1)
    s = torch.zeros_like(sim).scatter(1, top.indices, top.values)
    return s


def _norm(s):
    d = s.sum(1).clamp(min=1e-12).rsqrt()
    return d[:, None] * s * d[None, :]


def _dense(graph, n):
    indptr, indices, values = graph
    rows = torch.repeat_interleave(torch.arange(n), indptr[1:] - indptr[:-1])
    return torch.zeros(n, n).index_put((rows, indices), values, accumulate=True)


def test_item_graphs_match_the_dense_equations():
    task, shared = _task("knn_k=4", "lambda_coeff=0.7")
    model = task.module
    with torch.no_grad():
        model.omega.copy_(torch.tensor([0.3, -0.2]))
    fused, own = model.build_graphs()
    n, lam = 30, 0.7
    w = torch.softmax(torch.tensor([0.3, -0.2]), 0)
    feats = {m: torch.from_numpy(shared.features[m]) for m in ("image", "text")}
    learned = {m: _dense_knn(model.projections[m](feats[m]), 4) for m in feats}
    orig = {m: _norm(_dense_knn(feats[m], 4)) for m in feats}
    expect = (1 - lam) * _norm(w[0] * learned["image"] + w[1] * learned["text"]) + lam * (
        w[0] * orig["image"] + w[1] * orig["text"])
    assert torch.allclose(_dense(fused, n), expect.detach(), atol=1e-5)
    for m in feats:
        assert torch.allclose(_dense(own[m], n), ((1 - lam) * _norm(learned[m]) + lam * orig[m]).detach(), atol=1e-5)


@pytest.mark.parametrize("propagation", ["sampled", "full"])
def test_full_fanout_batch_equals_full_graph_inference(propagation):
    task, shared = _task("train.fanouts=[-1,-1]", f"train.propagation={propagation}", "item_layers=2")
    assert_batch_matches_full_graph(task.module.eval(), task, shared)


def test_the_learned_graph_trains_at_its_build_step_only():
    task, shared = _task("train.propagation=sampled")
    task.setup(0, 1, "cpu")
    model = task.module.train()
    rows = {"user_id": np.repeat(np.arange(5), 2), "item_id": shared.graph.user_items()[1][:10]}
    graph_params = {id(p) for p in model.graph_parameters()}
    for step, built in ((0, True), (1, False)):
        if step == 0:
            task.start_epoch(0, 0)
        model.zero_grad()
        loss, _ = task.loss(model, task.batch_from_rows(rows))
        loss.backward()
        got = {n: p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()}
        assert got["embedding.weight"]
        for n, p in model.named_parameters():
            if id(p) in graph_params:  # a gradient (possibly 0) always exists: DDP sees every parameter
                assert p.grad is not None and bool(p.grad.abs().sum() > 0) == built, (step, n)


def test_saved_model_ranks_the_same():
    task, shared = _task("knn_k=5")
    adj = shared.graph.normalized_adjacency()
    model = task.module.eval()
    users, items = model.full_embeddings(adj)
    again = from_payload(to_payload(model), shared.features).eval()
    u2, i2 = again.full_embeddings(adj)
    assert torch.allclose(users, u2) and torch.allclose(items, i2)


def test_a_lattice_teacher_distils_into_the_student():
    from raymm.methods.promptmm.tasks import DistillTask, TeacherTask
    from raymm.models.lattice import Lattice

    shared = _shared()
    cfg = build_config({}, ["method.name=promptmm", "model.embedding_dim=8", "train.fanouts=[4,4]",
                            "method.promptmm.prompt.enabled=false", "method.promptmm.teacher.backbone=lattice",
                            "method.promptmm.teacher.lattice.knn_k=3"])
    stage1 = TeacherTask(cfg, shared)
    assert isinstance(stage1.module, Lattice)
    stage1.start_epoch(0, 0)
    loss, parts = stage1.loss(stage1.module, sample_batch(stage1, shared))
    loss.backward()
    assert stage1.module.omega.grad.abs().sum() > 0 and set(parts) == {"bpr"}
    shared.extras["teacher"] = stage1.payload()
    task = DistillTask(cfg, shared)
    task.module.train()
    loss, parts = task.loss(task.module, sample_batch(task, shared))
    loss.backward()
    assert {"kd_pair", "kd_list", "kd_emb"} <= set(parts)
    assert all(p.grad is None for p in task.module.teacher.parameters())
