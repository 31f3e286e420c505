"""raymm.sparse: the CSR propagation matrix against dense products, forward and backward."""

import numpy as np
import pytest
import torch

from raymm.graph import TrainGraph
from raymm.sparse import SparseAdj


def _check_against_dense(adj: SparseAdj, dense: torch.Tensor) -> None:
    h = torch.randn(dense.shape[1], 5, dtype=torch.float32, requires_grad=True)
    g = torch.randn(dense.shape[0], 5)
    out = adj @ h
    (out * g).sum().backward()
    torch.testing.assert_close(out, dense @ h.detach())
    torch.testing.assert_close(h.grad, dense.T @ g)  # the backward is A^T g


def test_rectangular_matrix_sums_duplicates_and_backpropagates_through_its_transpose():
    rows = torch.tensor([0, 2, 2, 1, 0])
    cols = torch.tensor([3, 1, 1, 0, 0])
    values = torch.tensor([0.5, 2.0, 1.0, -1.0, 0.25])
    adj = SparseAdj.from_coo(rows, cols, values, (3, 4))
    dense = torch.zeros(3, 4)
    dense.index_put_((rows, cols), values, accumulate=True)
    assert adj.shape == (3, 4) and adj.nnz() == 4  # the duplicate (2, 1) is stored once, summed
    torch.testing.assert_close(adj.to_dense(), dense)
    _check_against_dense(adj, dense)


def test_graph_adjacency_is_symmetric_or_left_normalised_and_matches_dense():
    users = np.array([0, 0, 1, 2, 2, 2])
    items = np.array([0, 1, 1, 0, 2, 3])
    graph = TrainGraph.from_interactions(users, items, 3, 4)
    a = np.zeros((7, 7), dtype=np.float32)
    a[users, items + 3] = a[items + 3, users] = 1.0
    inv = 1.0 / np.sqrt(a.sum(1))
    for normalization, expected in (("symmetric", inv[:, None] * a * inv[None, :]), ("left", inv[:, None] * a)):
        adj = graph.normalized_adjacency(normalization=normalization)
        dense = torch.from_numpy(expected)
        torch.testing.assert_close(adj.to_dense(), dense)
        _check_against_dense(adj, dense)
        assert (adj.mat_t is adj.mat) == (normalization == "symmetric")  # A^T stored once when A = A^T


def test_product_agrees_with_a_torch_sparse_tensor_and_moves_devices():
    rows, cols = torch.tensor([0, 1, 1]), torch.tensor([1, 0, 2])
    values = torch.tensor([1.0, 2.0, 3.0])
    adj = SparseAdj.from_coo(rows, cols, values, (2, 3))
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (2, 3))
    h = torch.randn(3, 4)
    torch.testing.assert_close(adj @ h, torch.sparse.mm(coo, h))
    moved = adj.to("cpu")
    assert moved.device.type == "cpu" and moved is adj  # already there: the same object, its blocks kept
    torch.testing.assert_close(moved @ h, adj @ h)


def test_bipartite_blocks_are_the_off_diagonal_blocks_with_their_transposes():
    """A = [[0, A_ui], [A_iu, 0]]: each block propagates like the dense block, forward and backward,
    also for the unsymmetric 'left' normalisation; an entry inside a diagonal block is refused."""
    users = np.array([0, 0, 1, 2, 2, 2])
    items = np.array([0, 1, 1, 0, 2, 3])
    graph = TrainGraph.from_interactions(users, items, 3, 4)
    for normalization in ("symmetric", "left"):
        adj = graph.normalized_adjacency(normalization=normalization)
        dense = adj.to_dense()
        a_ui, a_iu = adj.bipartite(3)
        assert a_ui.shape == (3, 4) and a_iu.shape == (4, 3)
        torch.testing.assert_close(a_ui.to_dense(), dense[:3, 3:])
        torch.testing.assert_close(a_iu.to_dense(), dense[3:, :3])
        _check_against_dense(a_ui, dense[:3, 3:])
        _check_against_dense(a_iu, dense[3:, :3])
        assert adj.bipartite(3)[0] is a_ui  # built once
    same_side = SparseAdj.from_coo(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.ones(2), (3, 3))
    with pytest.raises(ValueError, match="not a bipartite"):
        same_side.bipartite(2)  # (0, 1) joins two users


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_kernel_product_equals_torch_csr_product(dtype):
    """On the CPU, A @ h and its backward run raymm's numba CSR kernel (empty rows included, a
    non-contiguous operand copied first); torch's CSR product gives the same values."""
    from raymm import cpu_kernels

    gen = torch.Generator().manual_seed(0)
    rows = torch.randint(0, 40, (300,), generator=gen)
    rows[rows == 7] = 8  # row 7 empty
    cols = torch.randint(0, 25, (300,), generator=gen)
    adj = SparseAdj.from_coo(rows, cols, torch.rand(300, generator=gen, dtype=dtype), (40, 25))
    h = torch.randn(9, 25, generator=gen, dtype=dtype).T.requires_grad_()  # (25, 9), not contiguous
    out = adj @ h
    assert torch.allclose(out, adj.mat @ h.detach(), rtol=1e-6, atol=1e-12) and not out[7].any()
    g = torch.randn(40, 9, generator=gen, dtype=dtype)
    out.backward(g)
    assert torch.allclose(h.grad, adj.mat_t @ g, rtol=1e-6, atol=1e-12)
    assert torch.equal(cpu_kernels.csr_mm(adj.mat, h.detach().contiguous()), out.detach())


def test_product_with_prefix_has_the_gradient_of_the_product_plus_the_prefix():
    """``matmul_and_prefix(h, n)`` = ``(A @ h, h[:n])`` with one gradient tensor for h: the same
    values and gradient as the two taken apart."""
    gen = torch.Generator().manual_seed(1)
    adj = SparseAdj.from_coo(torch.randint(0, 6, (40,), generator=gen), torch.randint(0, 15, (40,), generator=gen),
                             torch.rand(40, generator=gen, dtype=torch.float64), (6, 15))
    h = torch.randn(15, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    g, g_prefix = torch.randn(6, 4, generator=gen, dtype=torch.float64), torch.randn(6, 4, generator=gen, dtype=torch.float64)
    out, seeds = adj.matmul_and_prefix(h, 6)
    ((out * g).sum() + (seeds * g_prefix).sum()).backward()
    fused = h.grad.clone()
    h.grad = None
    ref_out, ref_seeds = adj @ h, h[:6]
    ((ref_out * g).sum() + (ref_seeds * g_prefix).sum()).backward()
    assert torch.equal(out, ref_out) and torch.equal(seeds, ref_seeds)
    assert torch.allclose(fused, h.grad)
    assert torch.autograd.gradcheck(lambda x: adj.matmul_and_prefix(x, 3), (h.detach().requires_grad_(),))
