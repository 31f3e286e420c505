"""Graph propagation as plain torch ops (runs on any device)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from raymm.sampling import Block
from raymm.sparse import SparseAdj


def rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[index]`` for an integer ``index`` of any shape: (*index.shape, *x.shape[1:]). Through
    ``index_select``, whose backward is an ``index_add_``; plain indexing's is an accumulating
    ``index_put_``, several times slower on the CPU."""
    return x.index_select(0, index.reshape(-1)).reshape(*index.shape, *x.shape[1:])


def row_dots(table: torch.Tensor, anchors: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(B, K) scores ``<table[cols[b, k]], anchors[b]>`` of (R, d) ``table``, (B, d) ``anchors`` and
    (B, K) integer ``cols`` (PromptMM's list-wise KD logits), differentiable in both tensors.

    On the CPU without the (B, K, d) gathered rows: the forward is a sampled dense-dense product
    (``torch.sparse.sampled_addmm`` on the pattern of ``cols``) and the backward two weighted bag
    sums (``F.embedding_bag``); 3x faster than ``bmm`` of the gathered rows at B = 4,096, K = 11,
    d = 64, the same values to float rounding. Elsewhere (GPUs) that ``bmm``."""
    if table.device.type != "cpu":
        return torch.bmm(rows(table, cols), anchors.unsqueeze(2)).squeeze(2)
    return _RowDots.apply(table, anchors, cols)


class _RowDots(torch.autograd.Function):
    """:func:`row_dots` on the CPU."""

    @staticmethod
    def forward(ctx, table, anchors, cols):
        b, k = cols.shape
        crow = torch.arange(0, b * k + 1, k, dtype=cols.dtype)
        # zeros, not empty: sampled_addmm multiplies the pattern's values by beta = 0, and 0 x NaN is NaN
        pattern = torch.sparse_csr_tensor(crow, cols.reshape(-1), torch.zeros(b * k, dtype=table.dtype),
                                          (b, table.shape[0]))
        ctx.save_for_backward(table, anchors, cols)
        return torch.sparse.sampled_addmm(pattern, anchors, table.T, beta=0.0).values().view(b, k)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        table, anchors, cols = ctx.saved_tensors
        grad = grad.contiguous()
        grad_table = grad_anchors = None
        if ctx.needs_input_grad[1]:  # sum_k grad[b, k] table[cols[b, k]]
            grad_anchors = F.embedding_bag(cols, table, per_sample_weights=grad, mode="sum")
        if ctx.needs_input_grad[0]:  # row r: sum over (b, k) with cols[b, k] = r of grad[b, k] anchors[b]
            flat = cols.reshape(-1)
            order = torch.argsort(flat)
            counts = torch.bincount(flat, minlength=table.shape[0])
            grad_table = F.embedding_bag(torch.div(order, cols.shape[1], rounding_mode="floor"), anchors,
                                         torch.cumsum(counts, 0) - counts,
                                         per_sample_weights=grad.reshape(-1)[order], mode="sum")
        return grad_table, grad_anchors, None


def prefix(h: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows of ``h`` (a batch's seeds): ``h`` itself when it has no more, since a
    slice's backward fills a zero tensor of ``h``'s size (every node is a seed in full propagation)."""
    return h if h.shape[0] == n else h[:n]


def propagate_block(h_src: torch.Tensor, block: Block) -> torch.Tensor:
    """One weighted-sum layer on a sampled block.

    ``h_dst[i] = sum_{(j -> i) in block} w_ij * h_src[j]``.

    Args:
        h_src: (n_src, d) embeddings of the block's source nodes.
        block: the sampled layer.

    Returns:
        (num_dst, d) embeddings of its destination nodes.
    """
    if block.adj is not None:  # the same sum as a sparse product (sampled blocks, full propagation)
        return block.adj @ h_src
    out = torch.zeros(block.num_dst, h_src.shape[1], dtype=h_src.dtype, device=h_src.device)
    return out.index_add_(0, block.edge_dst, h_src[block.edge_src] * block.edge_weight.unsqueeze(1))


def layers_at_seeds(h0: torch.Tensor, blocks: list[Block], num_seeds: int) -> list[torch.Tensor]:
    """LightGCN's layers 0..L (He et al., SIGIR 2020, Eq. 3) at the seeds of sampled blocks.

    Args:
        h0: (n_in, d) layer-0 embeddings of ``blocks[0].src_nid`` (or of the seeds when L = 0).
        blocks: L blocks, input first; the seeds are a prefix of every block's nodes.
        num_seeds: number of seed nodes S.

    Returns:
        L + 1 tensors (S, d). A block's input at the seeds is taken with its product
        (:meth:`~raymm.sparse.SparseAdj.matmul_and_prefix`), so that the input's gradient is one
        tensor and not also a zero-filled one of the input's size per slice.
    """
    layers, h = [], h0
    for block in blocks:
        if block.adj is not None:
            h, seeds = block.adj.matmul_and_prefix(h, num_seeds)
        else:
            h, seeds = propagate_block(h, block), prefix(h, num_seeds)
        layers.append(seeds)
    return layers + [prefix(h, num_seeds)]


def mean_of_layers_sampled(h0: torch.Tensor, blocks: list[Block], num_seeds: int) -> torch.Tensor:
    """LightGCN layer combination on sampled blocks (He et al., SIGIR 2020, Eq. 4 with
    alpha_k = 1 / (L + 1)): mean of :func:`layers_at_seeds`, (num_seeds, d)."""
    return mean_of_layers(layers_at_seeds(h0, blocks, num_seeds))


def mean_of_layers(layers: list[torch.Tensor]) -> torch.Tensor:
    """The mean of equally shaped layer outputs, summed in order."""
    total = layers[0]
    for h in layers[1:]:
        total = total + h
    return total / len(layers)


def mean_of_layers_full(h0: torch.Tensor, adj: SparseAdj, num_layers: int) -> torch.Tensor:
    """LightGCN layer combination on the full graph: ``mean_l A^l h0`` for l = 0..L.

    Args:
        h0: (N, d) layer-0 embeddings of all nodes.
        adj: (N, N) sparse normalised adjacency.

    Returns:
        (N, d).
    """
    h = h0
    total = h0
    for _ in range(num_layers):
        h = adj @ h
        total = total + h
    return total / (num_layers + 1)
