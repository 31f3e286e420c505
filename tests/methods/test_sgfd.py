"""SGFD: extractors, the losses against hand-computed values, gradient flow, ablation switches, labels."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from raymm.config import build_config
from raymm.graph import TrainGraph
from tests.conftest import sample_batch
from raymm.methods.base import SharedData
from raymm.methods.sgfd import item_labels
from raymm.methods.sgfd.model import SGFDHead
from raymm.methods.sgfd.tasks import SGFDTask, student_extractors
from raymm.models.extractors import StudentExtractor, TeacherExtractor, shrinking_dims
from raymm.models.registry import from_payload


def _shared(users=40, items=30, seed=0, labels=5):
    rng = np.random.default_rng(seed)
    key = np.unique(rng.integers(0, users, 500) * items + rng.integers(0, items, 500))
    graph = TrainGraph.from_interactions(key // items, key % items, users, items)
    feats = {"image": rng.normal(size=(items, 64)).astype(np.float32),
             "text": rng.normal(size=(items, 12)).astype(np.float32)}
    return SharedData(graph, None, None, feats, {"labels": rng.integers(0, labels, items)})


def _cfg(*extra):
    return build_config({}, ["method.name=sgfd", "model.embedding_dim=8", "train.fanouts=[4,4]",
                             *[e if e.startswith(("train.", "model.")) else f"method.sgfd.{e}" for e in extra]])


def test_extractor_shapes_and_unit_rows():
    assert shrinking_dims(4096, 64) == [4096, 1024, 256, 64]
    assert shrinking_dims(96, 32) == [96, 32]
    t, s = TeacherExtractor(256, 8), StudentExtractor(256, 8)
    assert [l.out_features for l in t.layers] == [64, 16, 8]
    x = torch.randn(5, 256)
    for out in (t(x), s(x)):
        assert out.shape == (5, 8) and torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)


def test_losses_match_hand_computed_values():
    torch.manual_seed(0)
    head = SGFDHead({"a": 16, "b": 16}, dim=4, num_labels=3, fusion=True)
    t = {m: F.normalize(torch.randn(6, 4), dim=1) for m in ("a", "b")}
    s = {m: F.normalize(torch.randn(6, 4), dim=1) for m in ("a", "b")}
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    T = 5.0
    kd = 0.0
    for m in ("a", "b"):
        pt = torch.softmax(head.classifiers[m](t[m]) / T, -1)
        ps = torch.softmax(head.classifiers[m](s[m]) / T, -1)
        kd += (pt - ps).abs().mean() + ((s[m] - t[m]) ** 2).mean()
    assert head.kd_loss(t, s, T).item() == pytest.approx(kd.item(), rel=1e-6)

    def ce(logits):
        return (-torch.log_softmax(logits, -1)[torch.arange(6), y]).mean()

    expected = ce(head.classifiers["a"](t["a"])) + ce(head.classifiers["b"](t["b"])) + ce(head.fusion(torch.cat([t["a"], t["b"]], 1)))
    assert head.ce_loss(t, y).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("backbone", ["lightgcn_m", "promptmm"])
def test_joint_loss_trains_teacher_student_and_classifiers(backbone):
    shared = _shared()
    task = SGFDTask(_cfg(f"backbone={backbone}", "w_ce=1.0", "w_kd=1.0"), shared)
    loss, parts = task.loss(task.module, sample_batch(task, shared))
    assert {"bpr", "ce", "kd"} <= set(parts) and torch.isfinite(loss)
    loss.backward()
    head = task.module.head
    for module in (head.teachers, head.classifiers, head.fusion, student_extractors(task.module.backbone)):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


@pytest.mark.parametrize("switch, absent, no_fusion", [("w_ce=0", "ce", True), ("w_kd=0", "kd", False),
                                                       ("fusion=false", None, True)])
def test_ablation_switches(switch, absent, no_fusion):
    shared = _shared()
    task = SGFDTask(_cfg(switch), shared)
    _, parts = task.loss(task.module, sample_batch(task, shared))
    assert absent is None or absent not in parts
    assert (task.module.head.fusion is None) == no_fusion


def test_backbone_alone_has_no_teacher_and_serves_only_the_student_extractor():
    shared = _shared()
    alone = SGFDTask(_cfg("w_ce=0", "w_kd=0"), shared)
    assert alone.module.head is None
    _, parts = alone.loss(alone.module, sample_batch(alone, shared))
    assert set(parts) == {"bpr"}
    full = SGFDTask(_cfg(), shared)
    payload = full.payload()
    assert payload["kind"] == "lightgcn_m" and not any(k.startswith(("head.", "teachers.")) for k in payload["state_dict"])
    served = from_payload(payload, shared.features)
    adj = shared.graph.normalized_adjacency()
    u1, i1 = served.full_embeddings(adj)
    u2, i2 = full.ranking_module().eval().full_embeddings(adj)
    assert torch.allclose(u1, u2) and torch.allclose(i1, i2)


def test_lightgcn_m_sampled_matches_full_graph_at_full_fanout():
    shared = _shared()
    task = SGFDTask(_cfg("train.fanouts=[-1,-1]", "w_ce=0", "w_kd=0"), shared)
    model = task.module.backbone.eval()
    batch = sample_batch(task, shared)
    emb, _ = model(batch)
    u, i = model.full_embeddings(shared.graph.normalized_adjacency())
    full = torch.cat([u, i])[batch.seeds]
    assert torch.allclose(emb, full, atol=1e-5)


class _Data:
    def __init__(self, categories):
        self.categories = categories

    def read_items(self):
        return {"category": self.categories}


def test_labels_from_categories_are_made_dense_and_kmeans_is_seeded():
    cfg = _cfg()
    assert item_labels(cfg.method.sgfd, _Data(np.array([7, 3, 7, 9])), {}).tolist() == [1, 0, 1, 2]
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 10
    feats = {"image": np.repeat(centres, 20, axis=0) + rng.normal(size=(60, 6))}
    opts = _cfg("labels=kmeans:3").method.sgfd
    a, b = item_labels(opts, None, feats), item_labels(opts, None, feats)
    assert np.array_equal(a, b)
    # the three planted clusters are recovered (up to renaming)
    assert all(len(set(a[k * 20:(k + 1) * 20])) == 1 for k in range(3)) and len(set(a)) == 3


@pytest.mark.parametrize("overrides, idle", [(["method.sgfd.dropout=0.3"], "dropout=0.3 does nothing here"),
                                             (["method.sgfd.backbone=promptmm", "method.sgfd.feature_weight=2.0"],
                                              "feature_weight=2.0 does nothing here"),
                                             (["method.sgfd.kmeans_iters=5"], "applies to labels: kmeans:<K> only")])
def test_an_option_the_backbone_or_labels_ignore_is_an_error(overrides, idle):
    from raymm.config import ConfigError

    import re

    with pytest.raises(ConfigError, match=r"method\.sgfd: .*" + re.escape(idle)):
        build_config({}, ["method.name=sgfd", *overrides])
    build_config({}, ["method.name=sgfd", "method.sgfd.backbone=promptmm", "method.sgfd.dropout=0.3"])  # used: fine
