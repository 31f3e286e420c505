import math

import numpy as np
import pytest
import torch

from raymm.config import load_config
from raymm.methods.kdsr import training_pairs
from raymm.methods.kdsr.losses import fit_codes, holistic_loss, nearest_code, sample_window_pairs, subspace_cosines
from raymm.methods.kdsr.tasks import KDSRTask
from raymm.methods.base import SharedData
from raymm.models.kdsr import KDSRRec
from raymm.models.registry import from_payload, to_payload
from raymm.sequences import SequenceData


def test_subspace_cosines_by_hand():
    a = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    b = torch.tensor([[2.0, 0.0, 0.0, 3.0]])
    assert subspace_cosines(a, b, 2).tolist() == [[1.0, 0.0]]


def test_holistic_loss_by_hand():
    student = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [5.0, 5.0]]])  # cos(s1, s2) = 1/sqrt(2)
    teacher = torch.tensor([[[0.0, 2.0], [0.0, 1.0], [1.0, 0.0]]])  # cos(t1, t2) = 1
    mask = torch.tensor([[True, True, False]])  # the third position is padding
    d = (1 / math.sqrt(2) - 1) / 1.5
    expect = math.sqrt(2 * d * d + 4 * 1e-8)  # two off-diagonal pairs, two diagonal (eps) terms
    assert holistic_loss(student, teacher, mask, 1.5).item() == pytest.approx(expect, rel=1e-5)


def test_codes_fit_on_pairs_and_nearest_centre():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 16)).astype(np.float32)
    pairs = rng.integers(0, 30, size=(400, 2))
    centres = fit_codes(x, pairs, num_subspaces=4, num_codes=5, seed=0)
    assert centres.shape == (5, 4)
    vec = torch.from_numpy(centres[[3, 1]]) + 1e-3
    assert nearest_code(vec, torch.from_numpy(centres)).tolist() == [3, 1]


def test_window_pairs_are_real_distinct_items_of_the_window():
    w = torch.tensor([[0, 0, 3, 4, 5], [0, 0, 0, 0, 7]])
    a, b = sample_window_pairs(w, 50, torch.Generator().manual_seed(0))
    assert len(a) > 0 and ((a != 0) & (b != 0) & (a != b)).all()
    assert set(a.tolist()) <= {3, 4, 5}  # the second window has a single item: no pair


def test_training_pairs_share_a_window():
    users = np.repeat([0, 1], [6, 4])
    items = np.r_[np.arange(6), np.arange(10, 14)]
    seq = SequenceData.from_arrays(users, items, np.zeros(10, np.int8), np.r_[np.arange(6), np.arange(4)], 2, 20)
    pairs = training_pairs(seq, max_len=2, n=200, seed=0)
    pos = {int(i): k for k, i in enumerate(seq.items)}
    gaps = np.array([pos[b] - pos[a] for a, b in pairs])
    assert ((gaps >= 1) & (gaps <= 2)).all()
    assert all((a < 10) == (b < 10) for a, b in pairs)  # never across users


def _task(*overrides):
    cfg = load_config("conf/kdsr.yaml", ["model.embedding_dim=8", "method.kdsr.max_len=4", *overrides])
    users = np.repeat([0, 1, 2], 5)
    items = np.r_[0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 1, 3, 5, 0, 6]
    split = np.tile(np.array([0, 0, 0, 1, 2], np.int8), 3)
    seq = SequenceData.from_arrays(users, items, split, np.tile(np.arange(5), 3), 3, 7)
    from raymm.graph import EvalSplit, TrainGraph

    tr = split == 0
    graph = TrainGraph.from_interactions(users[tr], items[tr], 3, 7)
    feats = {"image": np.random.default_rng(0).normal(size=(7, 16)).astype(np.float32),
             "text": np.random.default_rng(1).normal(size=(7, 8)).astype(np.float32)}
    shared = SharedData(graph, EvalSplit.from_interactions(users[split == 1], items[split == 1]), None, feats,
                        {"sequences": seq})
    if cfg.method.kdsr.codes:
        shared.extras["kdsr_codes"] = {m: fit_codes(x, training_pairs(seq, 4, 100, 0), 8, 5, 0) for m, x in feats.items()}
    task = KDSRTask(cfg, shared)
    task.setup(0, 1, "cpu")
    task.start_epoch(0)
    return task, seq


def test_kdsr_loss_terms_tables_learn_slower_and_served_model_is_self_contained():
    task, seq = _task()
    train = seq.examples("train")
    rows = {"user_id": seq.user_of(train), "item_id": seq.items[train]}
    loss, parts = task.loss(task.module, task.batch_from_rows(rows))
    assert set(parts) == {"ce", "holistic_image", "code_image", "holistic_text", "code_text"}
    loss.backward()
    assert all(p.grad is not None for p in task.module.parameters())  # DDP needs every parameter used
    opt = task.optimizer(list(task.module.parameters()))
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(task.module.rec.tables["image"].weight)] == pytest.approx(task.cfg.train.lr / 4)
    assert lrs[id(task.module.rec.item_emb.weight)] == pytest.approx(task.cfg.train.lr)
    # modality tables start from the frozen features (row 0 = padding)
    assert torch.allclose(task.module.rec.tables["text"].weight[1:], torch.from_numpy(task.shared.features["text"]))
    payload = to_payload(task.ranking_module())
    assert not any(k.startswith(("correlate", "code_mlp")) for k in payload["state_dict"])
    served = from_payload(payload)  # no dataset features needed: the trained tables travel with it
    w = torch.tensor([[0, 1, 2, 3]])
    assert torch.allclose(served.eval().score(w), task.ranking_module().eval().score(w))


@pytest.mark.parametrize("switch, absent", [("method.kdsr.holistic=false", "holistic"),
                                            ("method.kdsr.codes=false", "code")])
def test_ablation_switches_drop_their_terms_and_heads(switch, absent):
    task, seq = _task(switch)
    train = seq.examples("train")
    _, parts = task.loss(task.module, task.batch_from_rows({"user_id": seq.user_of(train),
                                                            "item_id": seq.items[train]}))
    assert not any(k.startswith(absent) for k in parts) and any(k != "ce" for k in parts)


def test_weights_must_name_the_dataset_modalities(tmp_path):
    from raymm.errors import InputError
    from raymm.data.prepare import prepare_dataset
    from raymm.methods.registry import get_method

    cfg = load_config("conf/kdsr.yaml", [f"output.dir={tmp_path}", "data.synthetic.num_users=50",
                                         "data.synthetic.num_items=40", "data.synthetic.num_interactions=600",
                                         "method.kdsr.weights={image: [1, 1]}"])
    with pytest.raises(InputError, match=r"weights names \['image'\] but the dataset's modalities are \['image', 'text'\]"):
        get_method("kdsr").check(cfg, prepare_dataset(cfg))


@pytest.mark.parametrize("method", ["kdsr", "odmt", "sasrec"])
def test_a_batch_of_first_items_is_a_zero_loss_step_not_a_divergence(method):
    """A streamed batch whose rows all lack history (each user's first item) still runs the model
    (every DDP worker takes part) with a finite, zero loss."""
    from raymm.methods.registry import get_method

    task, seq = _task()
    cfg = load_config(f"conf/{method}.yaml", ["model.embedding_dim=8", f"method.{method}.max_len=4"])
    (stage,) = get_method(method).stages(cfg)
    task.shared.extras["item_pop"] = np.full(7, 1 / 7, np.float32)  # what ODMT precomputes
    task = stage.task(cfg, task.shared)
    task.setup(0, 1, "cpu")
    task.start_epoch(0, 5)
    first = seq.indptr[:-1][np.diff(seq.indptr) > 0]
    batch = task.batch_from_rows({"user_id": seq.user_of(first), "item_id": seq.items[first]})
    assert batch.weight == 0.0
    loss, parts = task.loss(task.module, batch)
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
