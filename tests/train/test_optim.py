import copy

import pytest
import torch

from raymm.optim import LazyAdam


def _steps(make_opt, sparse: bool, rows_per_step, dense_grad_fn=None, n=12, d=4, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    emb = torch.nn.Embedding(n, d, sparse=sparse, dtype=dtype)
    opt = make_opt(emb.parameters())
    for rows in rows_per_step:
        opt.zero_grad()
        h = emb(torch.tensor(rows))
        (h.pow(3).sum() + h.sum()).backward()
        opt.step()
    return emb.weight.detach().clone()


ROWS = [[0, 3, 5], [3, 7, 3, 1], [11, 0], [5, 6, 7, 8, 9]]  # repeated rows too: a sparse grad is coalesced


def test_equals_torch_sparse_adam_on_row_sparse_gradients():
    ours = _steps(lambda p: LazyAdam(p, lr=0.05), True, ROWS)
    ref = _steps(lambda p: torch.optim.SparseAdam(list(p), lr=0.05), True, ROWS)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_equals_torch_adam_on_dense_gradients():
    ours = _steps(lambda p: LazyAdam(p, lr=0.05), False, ROWS)
    ref = _steps(lambda p: torch.optim.Adam(p, lr=0.05), False, ROWS)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_rows_a_step_did_not_read_are_left_alone():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = LazyAdam(emb.parameters(), lr=0.1)
    emb(torch.tensor([1, 2])).sum().backward()
    opt.step()
    before = emb.weight.detach().clone()
    opt.zero_grad()
    emb(torch.tensor([4])).sum().backward()
    opt.step()
    changed = (emb.weight.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [4]  # dense Adam would move rows 1 and 2 again by their momentum
    state = opt.state[emb.weight]
    m = state["exp_avg"]
    assert m[[1, 2]].abs().sum() > 0 and m[[0, 3]].abs().sum() == 0


def test_state_round_trips_through_a_checkpoint():
    torch.manual_seed(0)
    a = torch.nn.Embedding(6, 2, sparse=True)
    b = torch.nn.Embedding(6, 2, sparse=True)
    b.load_state_dict(a.state_dict())
    oa, ob = LazyAdam(a.parameters(), lr=0.1), LazyAdam(b.parameters(), lr=0.1)
    for opt, emb in ((oa, a), (ob, b)):
        emb(torch.tensor([0, 1])).sum().backward()
        opt.step()
    ob.load_state_dict(copy.deepcopy(oa.state_dict()))  # as a checkpoint file holds it
    for opt, emb in ((oa, a), (ob, b)):
        opt.zero_grad()
        emb(torch.tensor([1, 2])).pow(2).sum().backward()
        opt.step()
    assert torch.equal(a.weight, b.weight)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="lr"):
        LazyAdam([torch.nn.Parameter(torch.zeros(1))], lr=0)


def test_lazy_adam_is_refused_where_it_would_not_apply():
    from types import SimpleNamespace

    from raymm.config import build_config
    from raymm.errors import InputError
    from raymm.methods.registry import get_method

    dataset = SimpleNamespace(uri="d", manifest=SimpleNamespace(modalities={}))
    get_method("lightgcn").check(build_config({}, ["method.name=lightgcn", "train.optimizer=lazy_adam"]), dataset)
    with pytest.raises(InputError, match="not supported by method sasrec"):
        get_method("sasrec").check(build_config({}, ["method.name=sasrec", "train.optimizer=lazy_adam"]), dataset)
    with pytest.raises(InputError, match="NCCL"):
        get_method("lightgcn").check(build_config({}, ["method.name=lightgcn", "train.optimizer=lazy_adam",
                                                       "train.use_gpu=true", "train.num_workers=2"]), dataset)


def test_lazy_adam_task_gets_row_sparse_embedding_gradients():
    from raymm.config import build_config
    from raymm.methods.base import Task
    from tests.conftest import sample_batch, tiny_multimodal

    shared = tiny_multimodal()
    cfg = build_config({}, ["method.name=lightgcn", "train.optimizer=lazy_adam", "train.propagation=sampled",
                            "model.embedding_dim=4", "train.fanouts=[1, 1]"])
    task = Task(cfg, shared)
    opt = task.optimizer(task.module.parameters())
    assert isinstance(opt, LazyAdam)
    task.loss(task.module, sample_batch(task, shared, size=2))[0].backward()
    grad = task.module.embedding.weight.grad
    assert grad.is_sparse and 0 < grad.coalesce().indices().shape[1] < shared.graph.num_nodes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_cpu_row_update_equals_the_torch_ops(monkeypatch, dtype):
    """On CPU tables the sparse step runs one fused pass per row (:mod:`raymm.cpu_kernels`); the
    torch ops that GPUs run give the same parameters, up to float rounding."""
    from raymm import cpu_kernels

    rows = [torch.randperm(500, generator=torch.Generator().manual_seed(s))[:120].tolist() for s in range(5)]
    run = lambda: _steps(lambda p: LazyAdam(p, lr=0.05), True, rows, n=500, d=16, dtype=dtype)  # noqa: E731
    kernel, calls = cpu_kernels.adam_rows_, []
    monkeypatch.setattr(cpu_kernels, "adam_rows_", lambda *a: calls.append(1) or kernel(*a))
    fused = run()
    assert len(calls) == len(rows)
    monkeypatch.setattr(cpu_kernels, "fits", lambda *tables: False)
    plain = run()
    assert len(calls) == len(rows)
    start = _steps(lambda p: LazyAdam(p, lr=0.05), True, [], n=500, d=16, dtype=dtype)
    assert (fused != start).any(dim=1).nonzero().flatten().tolist() == sorted(set(sum(rows, [])))
    assert torch.allclose(fused, plain, rtol=1e-5, atol=1e-6)
