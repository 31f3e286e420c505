"""Fused CPU loops (numba) for per-row work that torch does in many passes over memory.

Each kernel is compiled on first use in a process (about a second; cached under ``__pycache__`` or
numba's user-wide cache when the package directory is read-only) and runs on as many threads as
torch uses (``torch.get_num_threads()``, which Ray Train sets from a worker's CPUs). GPU tensors
never come here: their callers keep the torch ops.
"""

from __future__ import annotations

import functools
import math

import torch


def _njit(fn, **options):
    """``numba.njit(**options)`` with the on-disk cache when some cache directory is writable."""
    import numba

    try:
        return numba.njit(cache=True, **options)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available": compile per process instead
        return numba.njit(**options)(fn)


@functools.cache
def _adam_rows_kernel():
    from numba import prange

    def adam_rows(p, m, v, rows, g, b1, b2, step, eps):
        for i in prange(rows.shape[0]):
            r = rows[i]
            for j in range(p.shape[1]):
                gj = g[i, j]
                mj = m[r, j] + (1.0 - b1) * (gj - m[r, j])
                vj = b2 * v[r, j] + (1.0 - b2) * gj * gj
                m[r, j] = mj
                v[r, j] = vj
                p[r, j] -= step * mj / (math.sqrt(vj) + eps)

    return _njit(adam_rows, parallel=True)


def adam_rows_(p: torch.Tensor, m: torch.Tensor, v: torch.Tensor, rows: torch.Tensor, g: torch.Tensor,
               b1: float, b2: float, step: float, eps: float) -> None:
    r"""Adam's update of the rows ``rows`` of ``p`` and its moments, in place, in one pass per row.

    For each ``r = rows[i]`` with gradient row ``g[i]`` (Kingma and Ba, ICLR 2015, Algorithm 1, the
    bias corrections folded into ``step`` and ``eps`` by the caller):

    .. math::
        m_r \leftarrow m_r + (1-\beta_1)(g_i - m_r), \quad
        v_r \leftarrow \beta_2 v_r + (1-\beta_2) g_i^2, \quad
        p_r \leftarrow p_r - \mathrm{step}\; m_r / (\sqrt{v_r} + \mathrm{eps})

    The arithmetic is in float64 and rounded once to the tables' dtype. Rows are updated in
    parallel, so they must be distinct.

    Args:
        p, m, v: (N, d) contiguous CPU tables of one dtype (parameter, first and second moment).
        rows: (R,) distinct int64 row ids.
        g: (R, d) contiguous gradient rows, ``g[i]`` for ``rows[i]``.
    """
    _threads()
    _adam_rows_kernel()(*(t.detach().numpy() for t in (p, m, v, rows, g)), b1, b2, step, eps)


@functools.cache
def _csr_mm_kernel():
    from numba import prange

    def csr_mm(crow, col, val, h, out):
        for i in prange(crow.shape[0] - 1):
            for j in range(h.shape[1]):
                out[i, j] = 0
            for e in range(crow[i], crow[i + 1]):
                c, w = col[e], val[e]
                for j in range(h.shape[1]):
                    out[i, j] += w * h[c, j]

    return _njit(csr_mm, parallel=True)


def csr_mm(mat: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``mat @ h`` for a CSR ``mat`` (n, m) and a dense ``h`` (m, d): each output row summed in
    entry order by one thread, written once (``torch.sparse.mm`` zero-fills its output and copies
    it once more). (n, d) of ``h``'s dtype."""
    _threads()
    out = torch.empty(mat.shape[0], h.shape[1], dtype=h.dtype)
    _csr_mm_kernel()(mat.crow_indices().numpy(), mat.col_indices().numpy(), mat.values().numpy(),
                     h.detach().numpy(), out.numpy())
    return out


def _threads() -> int:
    """Run this thread's numba kernels on as many threads as torch's ops; that number."""
    import numba

    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    return n


@functools.cache
def _distinct_kernel():
    import numpy as np

    def distinct(rows, n):
        seen = np.zeros(n, np.bool_)
        for r in rows:
            if seen[r]:
                return False
            seen[r] = True
        return True

    return _njit(distinct, nogil=True)


def distinct(rows: torch.Tensor, n: int) -> bool:
    """Whether the (R,) ids ``rows``, each in [0, n), are all different (one pass, (n,) marks)."""
    return bool(_distinct_kernel()(rows.numpy(), n))


def fits(*tables: torch.Tensor) -> bool:
    """Whether the kernels here take these tables as they are: contiguous CPU float32 or float64
    tensors of one dtype."""
    dtype = tables[0].dtype
    return dtype in (torch.float32, torch.float64) and all(
        t.device.type == "cpu" and t.is_contiguous() and t.dtype == dtype for t in tables)


@functools.cache
def _block_kernel():
    import numpy as np
    from numba import prange

    def block(dst_nid, src, dst, pos, seen, sqrt_degree, src_scale, n_threads):
        n_dst, n_edges, n_nodes = dst_nid.shape[0], src.shape[0], seen.shape[0]
        for k in prange(n_dst):
            pos[dst_nid[k]] = k
        edge_dst = np.empty(n_edges, np.int64)
        for e in prange(n_edges):
            edge_dst[e] = pos[dst[e]]
        grouped = True
        for e in range(1, n_edges):
            if edge_dst[e] < edge_dst[e - 1]:
                grouped = False
                break
        if not grouped:  # DGL lists each node's sampled edges together, in the order of the nodes; sort if not
            order = np.argsort(edge_dst, kind="mergesort")
            edge_dst, src = edge_dst[order], src[order]
        for e in prange(n_edges):
            seen[src[e]] = True  # (the same value from every thread)
        for k in prange(n_dst):
            seen[dst_nid[k]] = False
        # the other sources in ascending id order: counts per chunk of node ids, then their offsets
        n_chunks = 64
        chunk = (n_nodes + n_chunks - 1) // n_chunks
        found = np.zeros(n_chunks + 1, np.int64)
        for c in prange(n_chunks):
            for x in range(c * chunk, min(n_nodes, (c + 1) * chunk)):
                found[c + 1] += seen[x]
        found[0] = n_dst
        for c in range(n_chunks):
            found[c + 1] += found[c]
        n_src = found[n_chunks]
        src_nid = np.empty(n_src, np.int64)
        src_nid[:n_dst] = dst_nid
        for c in prange(n_chunks):
            k = found[c]
            for x in range(c * chunk, min(n_nodes, (c + 1) * chunk)):
                if seen[x]:
                    seen[x] = False
                    pos[x] = k
                    src_nid[k] = x
                    k += 1
        edge_src = np.empty(n_edges, np.int64)
        for e in prange(n_edges):
            edge_src[e] = pos[src[e]]
        crow = np.zeros(n_dst + 1, np.int64)
        for e in range(n_edges):
            crow[edge_dst[e] + 1] += 1
        for k in range(n_dst):
            crow[k + 1] += crow[k]
        weight = np.empty(n_edges, src_scale.dtype)
        for e in prange(n_edges):
            i = edge_dst[e]
            weight[e] = src_scale[src[e]] * (sqrt_degree[dst_nid[i]] / (crow[i + 1] - crow[i]))
        # the transpose by a stable counting sort on the source, in parallel: each thread counts
        # its chunk of edges per source, then writes them at its own offsets within each source
        step = (n_edges + n_threads - 1) // n_threads
        at = np.zeros((n_threads, n_src), np.int64)
        for t in prange(n_threads):
            for e in range(t * step, min(n_edges, (t + 1) * step)):
                at[t, edge_src[e]] += 1
        crow_t = np.zeros(n_src + 1, np.int64)
        for j in range(n_src):
            crow_t[j + 1] = crow_t[j]
            for t in range(n_threads):
                count = at[t, j]
                at[t, j] = crow_t[j + 1]
                crow_t[j + 1] += count
        col_t = np.empty(n_edges, np.int64)
        weight_t = np.empty(n_edges, src_scale.dtype)
        for t in prange(n_threads):
            for e in range(t * step, min(n_edges, (t + 1) * step)):
                j = edge_src[e]
                col_t[at[t, j]] = edge_dst[e]
                weight_t[at[t, j]] = weight[e]
                at[t, j] += 1
        return src_nid, edge_src, edge_dst, weight, crow, crow_t, col_t, weight_t

    return _njit(block, nogil=True, parallel=True)


def sampled_block(dst_nid: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, pos: torch.Tensor,
                  seen: torch.Tensor, sqrt_degree: torch.Tensor, src_scale: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The pieces of a sampled block (:meth:`raymm.sampling.NeighbourSampler._block`), in a few
    parallel passes over the edges and the nodes, without the GIL.

    Args:
        dst_nid: (n_dst,) distinct destination node ids.
        src, dst: (E,) sampled edges ``src -> dst`` as graph node ids (sorted by destination first
            when not grouped by it in ``dst_nid``'s order, as DGL groups them).
        pos: (N,) int64 scratch (any values); seen: (N,) bool scratch, all False (left all False).
        sqrt_degree: (N,) ``d^-1/2 d`` per node; src_scale: (N,) the source side's factor.

    Returns:
        src_nid (n_src,): ``dst_nid`` and then the other sources in ascending id order;
        edge_src, edge_dst (E,): the edges as positions in ``src_nid``, grouped by destination;
        weight (E,): ``src_scale[src] * sqrt_degree[dst] / s_dst`` with ``s_dst`` the destination's
        sampled edges; crow (n_dst + 1,): CSR row pointers of the (dst x src) matrix (columns
        ``edge_src``, values ``weight``); crow_t (n_src + 1,), col_t (E,), weight_t (E,): its
        transpose as CSR, each row's entries in edge order.
    """
    out = _block_kernel()(*(t.numpy() for t in (dst_nid, src, dst, pos, seen, sqrt_degree, src_scale)), _threads())
    return tuple(torch.from_numpy(a) for a in out)
