"""Item-item graphs from modality features (FREEDOM's frozen ones, LATTICE's learned ones): kNN
neighbourhoods of cosine similarity, kept as CSR ``(indptr (I+1,), indices, values)`` tensors, and
convolution over them either for all items (one sparse product per layer) or for a batch's items
from their own neighbourhoods (k is the fan-out, so it is exact and its cost does not grow with the
catalogue); :func:`propagate` picks the cheaper of the two for a batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CSR = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@torch.no_grad()
def knn(x: torch.Tensor, k: int, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """((I, k) neighbour ids, (I, k) cosine similarities) of each row's k most similar rows of
    ``x`` (itself included), computed ``chunk`` rows at a time (memory ``chunk x I``)."""
    xn = F.normalize(x, dim=1)
    k = min(k, len(x))
    ids, sims = [], []
    for lo in range(0, len(x), chunk):
        top = torch.topk(xn[lo:lo + chunk] @ xn.T, k, dim=1)
        ids.append(top.indices)
        sims.append(top.values)
    return torch.cat(ids), torch.cat(sims)


def csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n: int) -> CSR:
    """Entries (duplicates summed) as CSR tensors; ``values`` keeps its autograd graph."""
    m = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n)).coalesce()
    r, c = m.indices()
    indptr = torch.zeros(n + 1, dtype=torch.int64, device=r.device)
    indptr[1:] = torch.cumsum(torch.bincount(r, minlength=n), 0)
    return indptr, c, m.values()


def symmetric_normalize(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """``D^-1/2 S D^-1/2`` values with D the ROW sums of S (as the public FREEDOM and LATTICE code;
    a kNN graph is not symmetric); 0 where a row sums to <= 0."""
    rowsum = torch.zeros(n, dtype=values.dtype, device=values.device).index_add(0, rows, values)
    inv = torch.where(rowsum > 0, rowsum.clamp(min=1e-12).rsqrt(), torch.zeros_like(rowsum))
    return values * inv[rows] * inv[cols]


def propagate_rows(graph: CSR, table: torch.Tensor, items: torch.Tensor, layers: int) -> torch.Tensor:
    """(n, d) rows ``items`` of ``S^layers table``, from the items' neighbourhoods only (O(n k^layers))."""
    if layers == 0:
        return table[items]
    indptr, indices, values = graph
    start, count = indptr[items], indptr[items + 1] - indptr[items]
    owner = torch.repeat_interleave(torch.arange(len(items), device=items.device), count)
    edge = torch.repeat_interleave(start - torch.cumsum(count, 0) + count, count) + torch.arange(
        int(count.sum()), device=items.device)
    nbrs, inv = torch.unique(indices[edge], return_inverse=True)
    h = propagate_rows(graph, table, nbrs, layers - 1)[inv] * values[edge].unsqueeze(1)
    return torch.zeros(len(items), table.shape[1], dtype=h.dtype, device=h.device).index_add(0, owner, h)


ROWS_EDGE_COST = 4.0  # a gathered edge of propagate_rows against a non-zero of the sparse product


def propagate(graph: CSR, table: torch.Tensor, items: torch.Tensor | None, layers: int) -> torch.Tensor:
    """(n, d) rows ``items`` of ``S^layers table`` (None: every item), the cheaper exact way.

    From the items' own neighbourhoods the edges gathered are about ``sum_l min(n deg^(l-1), I) deg``
    (deg = nnz / I); over every item they are ``layers x nnz``, in a sparse product that costs far
    less per edge. Measured on TikTok's graphs (6,710 items, one thread, forward and backward, while
    other jobs shared the machine): a gathered edge cost 7-9x a non-zero of the product, and with
    k = 20, 2 layers and 1,500 batch items the rows took 1.2-1.5 s against 80 ms. The rows are
    chosen while their estimated edges times ``ROWS_EDGE_COST`` stay below the product's. With 4,
    the choice was at most 1.6x slower than the faster way in every case measured (k 5-20, 1-2
    layers, 200 or 1,500 items); on small batches of large catalogues the rows still win."""
    if items is None:
        return propagate_all(graph, table, layers)
    num_items, nnz = len(graph[0]) - 1, len(graph[1])
    deg = nnz / max(num_items, 1)
    frontier, gathered = float(len(items)), 0.0
    for _ in range(layers):
        gathered += min(frontier, num_items) * deg
        frontier *= deg
    if ROWS_EDGE_COST * gathered >= layers * nnz:
        return propagate_all(graph, table, layers)[items]
    return propagate_rows(graph, table, items, layers)


def propagate_all(graph: CSR, table: torch.Tensor, layers: int) -> torch.Tensor:
    """(I, d) ``S^layers table`` over every item."""
    indptr, indices, values = graph
    n = len(indptr) - 1
    rows = torch.repeat_interleave(torch.arange(n, device=indptr.device), indptr[1:] - indptr[:-1])
    s = torch.sparse_coo_tensor(torch.stack([rows, indices]), values, (n, n))
    h = table
    for _ in range(layers):
        h = torch.sparse.mm(s, h)
    return h
