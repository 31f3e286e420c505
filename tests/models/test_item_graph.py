"""Item-item convolution: the batch-rows and all-items ways agree with the dense product, in value
and gradient (to the table and to the graph's values, which LATTICE learns), and the chooser takes
the rows for a small batch and the sparse product when the rows would cover the catalogue."""

import pytest
import torch

from raymm.models import item_graph
from raymm.models.item_graph import csr, knn, propagate, propagate_all, propagate_rows


def _graph(num_items=60, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids, sims = knn(torch.randn(num_items, 8, generator=g), k)
    rows = torch.arange(num_items).repeat_interleave(k)
    values = sims.reshape(-1).abs().clone().requires_grad_(True)
    return csr(rows, ids.reshape(-1), values, num_items), values


@pytest.mark.parametrize("layers", [1, 2])
def test_both_ways_equal_the_dense_product_in_value_and_gradient(layers):
    (indptr, indices, values), leaf = _graph()
    n = len(indptr) - 1
    table = torch.randn(n, 4, requires_grad=True)
    items = torch.tensor([3, 17, 17, 42, 0])
    rows = torch.arange(n).repeat_interleave(indptr[1:] - indptr[:-1])
    dense = torch.zeros(n, n).index_put((rows, indices), values, accumulate=True)
    want = torch.linalg.matrix_power(dense, layers) @ table
    grads = []
    for out in (torch.linalg.matrix_power(dense, layers) @ table, propagate_all((indptr, indices, values), table, layers),
                propagate_rows((indptr, indices, values), table, items, layers)):
        out = out if len(out) == len(items) else out[items]
        assert torch.allclose(out, want[items], atol=1e-5)
        g_table, g_values = torch.autograd.grad((out * torch.arange(4.0)).sum(), [table, leaf], retain_graph=True)
        grads.append((g_table, g_values))
    for g_table, g_values in grads[1:]:
        assert torch.allclose(g_table, grads[0][0], atol=1e-5)
        assert torch.allclose(g_values, grads[0][1], atol=1e-5)


def test_the_chooser_takes_the_rows_for_small_batches_and_the_product_for_large_ones(monkeypatch):
    graph, _ = _graph(num_items=400, k=10)
    table = torch.randn(400, 4)
    used = []
    monkeypatch.setattr(item_graph, "propagate_rows", lambda *a: used.append("rows") or propagate_rows(*a))
    monkeypatch.setattr(item_graph, "propagate_all", lambda *a: used.append("all") or propagate_all(*a))
    small, large = torch.tensor([1, 2, 3]), torch.arange(0, 400, 2)
    for items, layers, way in ((small, 1, "rows"), (small, 2, "rows"), (large, 1, "all"), (large, 2, "all"),
                               (None, 1, "all")):
        used.clear()
        out = propagate(graph, table, items, layers)
        assert set(used) == {way}, (items, layers)  # propagate_rows recurses once per layer
        want = propagate_all(graph, table, layers)
        assert torch.allclose(out, want if items is None else want[items], atol=1e-5)
