"""Mini-batch sampling on the CPU with DGL: negatives and neighbourhood blocks.

A training mini-batch is ``(users, positive items, negative items)``. Its seed nodes (the distinct
users and items) are expanded layer by layer with DGL neighbour sampling; each layer becomes a
:class:`Block` of plain torch tensors that the model runs on any device (DGL from PyPI is CPU-only).

With :class:`FullNeighbourhood` instead, a batch carries the whole graph's edges and propagation is
exact (``train.propagation``: ``full``, ``sampled`` or ``auto``, see :func:`choose`).

Edge weights make sampled propagation match full-graph propagation in expectation: an edge
``j -> i`` sampled among ``s_i`` of ``i``'s ``d_i`` neighbours (uniformly, without replacement)
carries ``(d_i / s_i) * d_i^-1/2 d_j^-1/2``, with FULL-graph degrees ``d``. Each neighbour is in the
sample with probability ``s_i / d_i``, so ``E[sum_sampled w_ij h_j] = sum_all d_i^-1/2 d_j^-1/2 h_j``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from raymm import cpu_kernels
from raymm.graph import TrainGraph
from raymm.sparse import SparseAdj


@dataclass
class Block:
    """One propagation layer on a sampled neighbourhood.

    Destination nodes are the first ``num_dst`` source nodes (DGL's block convention), so the seeds
    of a batch are a prefix of every layer's nodes.

    Attributes:
        src_nid: (n_src,) graph node ids of the layer's input nodes.
        num_dst: number of output nodes (a prefix of ``src_nid``).
        edge_src: (E,) index into ``src_nid``.
        edge_dst: (E,) index into the first ``num_dst`` nodes.
        edge_weight: (E,) float32 weights (see module docstring).
        adj: (num_dst, n_src) sparse matrix of the same edges and weights (:class:`~raymm.sparse.
            SparseAdj`, CSR with its transpose); when set, propagation is one sparse product with it
            (4-5x faster than gathering and ``index_add`` on the edge lists, forward and backward,
            on TikTok blocks, measured when the product was still a COO ``torch.sparse.mm``).
    """

    src_nid: torch.Tensor
    num_dst: int
    edge_src: torch.Tensor
    edge_dst: torch.Tensor
    edge_weight: torch.Tensor
    adj: SparseAdj | None = None

    def to(self, device: torch.device | str) -> "Block":
        return Block(self.src_nid.to(device), self.num_dst, self.edge_src.to(device), self.edge_dst.to(device),
                     self.edge_weight.to(device), None if self.adj is None else self.adj.to(device))


class NegativeSampler:
    """Uniform negative items that are never one of the user's training positives.

    Membership of ``user * I + item`` is a lookup in a bitmap of all U x I pairs when that takes at
    most ``bitmap_max_bytes`` (TikTok: 7.8 MB), else a binary search in the sorted positive keys.
    Both give the same answers; the bitmap is the faster one (the binary search of a student batch's
    45k list negatives took about 11 ms of its 16 ms batch on TikTok).
    """

    def __init__(self, graph: TrainGraph, seed: int = 0, max_rounds: int = 100, bitmap_max_bytes: int = 64 << 20):
        self.num_items = graph.num_items
        self.keys = graph.positive_keys()
        self.rng = np.random.default_rng(seed)
        self.max_rounds = max_rounds
        size = -(-graph.num_users * graph.num_items // 8)  # bytes of a bitmap of all U x I pairs
        self.bitmap = np.zeros(size, dtype=np.uint8) if size <= bitmap_max_bytes else None
        if self.bitmap is not None and len(self.keys):
            byte, bit = self.keys >> 3, (1 << (self.keys & 7)).astype(np.uint8)
            starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])  # keys are sorted: one run per byte
            self.bitmap[byte[starts]] = np.bitwise_or.reduceat(bit, starts)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.num_items + items
        if self.bitmap is not None:
            return ((self.bitmap[keys >> 3] >> (keys & 7)) & 1).astype(bool)
        pos = np.searchsorted(self.keys, keys)
        pos = np.minimum(pos, len(self.keys) - 1)
        return self.keys[pos] == keys if len(self.keys) else np.zeros(len(keys), dtype=bool)

    def sample(self, users: np.ndarray, num: int = 1) -> np.ndarray:
        """(len(users), num) int64 negatives for each user."""
        users = np.repeat(np.asarray(users, dtype=np.int64), num)
        items = self.rng.integers(0, self.num_items, len(users))
        for _ in range(self.max_rounds):
            bad = np.flatnonzero(self.is_positive(users, items))
            if not bad.size:
                return items.reshape(-1, num)
            items[bad] = self.rng.integers(0, self.num_items, bad.size)
        raise RuntimeError(f"could not draw negatives for users {np.unique(users[bad])[:5].tolist()} "
                           f"after {self.max_rounds} rounds: they interacted with (almost) every item")


class NeighbourSampler:
    """Layer-wise neighbour sampling with DGL (CPU) into :class:`Block` s.

    Args:
        graph: the training graph.
        fanouts: neighbours per node for each layer, input layer first (DGL's convention); -1 = all.
        normalization: ``symmetric`` (D^-1/2 A D^-1/2, LightGCN) or ``left`` (D^-1/2 A, PromptMM's
            public code), always with full-graph degrees.
    """

    def __init__(self, graph: TrainGraph, fanouts: list[int], normalization: str = "symmetric"):
        if normalization not in ("symmetric", "left"):
            raise ValueError(f"normalization must be 'symmetric' or 'left', got {normalization!r}")
        self.g = graph.to_dgl()
        self.fanouts = list(fanouts)
        self.inv_sqrt = graph.inv_sqrt_degree()
        self.sqrt_degree = self.inv_sqrt * torch.from_numpy(graph.degree)  # d^-1/2 d: a sampled edge's dst factor before / s_i
        # 'left' (PromptMM's public code): only the destination side is scaled, D^-1/2 A.
        self.src_scale = self.inv_sqrt if normalization == "symmetric" else torch.ones_like(self.inv_sqrt)
        self._local = threading.local()  # per-thread scratch of :meth:`_block`

    def sample(self, seeds: torch.Tensor) -> list[Block]:
        """Blocks for distinct seed node ids ``seeds`` (n,), input layer first."""
        import dgl

        pos, seen = self._scratch()
        blocks: list[Block] = []
        frontier_nodes = seeds
        for fanout in reversed(self.fanouts):
            src, dst = dgl.sampling.sample_neighbors(self.g, frontier_nodes, fanout).edges()
            blocks.insert(0, self._block(frontier_nodes, src, dst, pos, seen))
            frontier_nodes = blocks[0].src_nid
        return blocks

    def _scratch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This thread's (N,) int64 node positions and (N,) bool marks (the prefetching thread and
        the caller's each have their own). Every entry read is written first in the same call, so
        they are never cleared, except the marks, which are reset where they were set."""
        local = self._local
        if not hasattr(local, "pos"):
            local.pos = torch.zeros(self.g.num_nodes(), dtype=torch.int64)
            local.seen = torch.zeros(self.g.num_nodes(), dtype=torch.bool)
        return local.pos, local.seen

    def _block(self, dst_nid: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, pos: torch.Tensor,
               seen: torch.Tensor) -> Block:
        """The :class:`Block` of sampled edges ``src -> dst`` (graph node ids, (E,) each) into the
        distinct nodes ``dst_nid``: source nodes are ``dst_nid`` and then the other sources in
        ascending id order. What ``dgl.to_block`` does, in one numba kernel over two (N,) scratch
        tensors (:func:`raymm.cpu_kernels.sampled_block`, which also builds both CSR matrices). At
        10M interactions (fan-outs 10,10, batch 2,048 in a worker's row order, the second hop's
        block of about 500k edges and 250k sources, one process, 2 threads, medians of 40): 15-16 ms
        against 19 ms for the vectorised torch ops it replaced (2026-12-07)."""
        src_nid, edge_src, edge_dst, weight, crow, crow_t, col_t, weight_t = cpu_kernels.sampled_block(
            dst_nid, src, dst, pos, seen, self.sqrt_degree, self.src_scale)
        n_dst, n_src = len(dst_nid), len(src_nid)
        adj = SparseAdj(torch.sparse_csr_tensor(crow, edge_src, weight, (n_dst, n_src)),
                        torch.sparse_csr_tensor(crow_t, col_t, weight_t, (n_src, n_dst)))
        return Block(src_nid, n_dst, edge_src, edge_dst, weight, adj)


class FullNeighbourhood:
    """Exact full-graph propagation: every step propagates over all training edges (no sampling).

    A batch then carries one :class:`Block` per layer holding the whole normalised adjacency
    (``d_i^-1/2 d_j^-1/2``, or ``d_i^-1/2`` for ``left``) as a sparse matrix, every node is a seed
    in node-id order, and the batch's own users and items are listed in ``Batch.nodes``. A step costs
    ``L`` sparse products over E edges (:class:`~raymm.sparse.SparseAdj`), which beats sampling when the graph is
    small (see :func:`choose`); the result equals full-graph inference exactly.

    Args:
        graph: the training graph.
        num_layers: how many blocks a batch carries (``len(train.fanouts)``).
        normalization: ``symmetric`` or ``left``, as :class:`NeighbourSampler`.
        device: where the adjacency lives (moved once, not with every batch).
    """

    def __init__(self, graph: TrainGraph, num_layers: int, normalization: str = "symmetric",
                 device: torch.device | str = "cpu"):
        self.fanouts = [-1] * num_layers
        self.num_nodes = graph.num_nodes
        self.adj = graph.normalized_adjacency(device, normalization)
        self.seeds = torch.arange(self.num_nodes)  # every node, in id order, for every batch
        empty = torch.zeros(0, dtype=torch.int64)
        self.block = Block(self.seeds, self.num_nodes, empty, empty, torch.zeros(0), self.adj)

    def batch(self, parts: list[np.ndarray], list_items: np.ndarray | None) -> "Batch":
        """A batch whose positions are node ids: ``parts`` = users, positives (B,), negatives (B, N)
        as node ids."""
        users, pos, neg = (torch.from_numpy(p) for p in parts)
        nodes = np.unique(np.concatenate([p.reshape(-1) for p in parts]
                                         + ([] if list_items is None else [list_items.reshape(-1)])))
        return Batch([self.block] * len(self.fanouts), self.seeds, users, pos, neg,
                     None if list_items is None else torch.from_numpy(list_items), torch.from_numpy(nodes),
                     full=True)


def choose(graph: TrainGraph, fanouts: list[int], batch_size: int, propagation: str) -> str:
    """``train.propagation``: ``full`` or ``sampled``, deciding ``auto`` by the edge work per step.

    Full propagation touches ``L x E`` edges per step (E directed training edges) in every sparse
    product of the model; sampling touches about ``3B (f_L + f_L f_{L-1} + ...)`` (users, positives
    and negatives of a batch of B, fan-outs input first) plus DGL's per-batch overhead. ``auto``
    picks full when ``L x E`` is at most a quarter of that estimate; a fan-out of -1 counts as
    unbounded. The quarter is measured (``benchmarks/bench_propagation.py``, one process, 2 threads,
    batch + step, idle 2-core machine, 2026-12-02): on the synthetic default (ratio 0.20) full vs
    sampled is LightGCN 4.1 vs 8.1 ms, SGFD 10.2 vs 14.8 ms, PromptMM teacher 15.3 vs 19.3 ms; on
    TikTok (ratio 0.70) LightGCN 14.8 vs 12.2 ms, SGFD 33.0 vs 24.1 ms, PromptMM teacher 82.1 vs
    41.2 ms (feature models propagate every modality over the whole graph).
    """
    if propagation != "auto":
        return propagation
    if any(f == -1 for f in fanouts):
        return "full"
    return "full" if 4 * len(fanouts) * len(graph.indices) <= sampled_edges(fanouts, batch_size) else "sampled"


def sampled_edges(fanouts: list[int], batch_size: int) -> int:
    """About how many edges a sampled batch touches: ``3B (f_L + f_L f_{L-1} + ...)``."""
    total, reach = 0, 3 * batch_size
    for f in reversed(fanouts):
        reach *= f
        total += reach
    return total


def neighbourhoods(graph: TrainGraph, fanouts: list[int], batch_size: int, propagation: str,
                   normalization: str = "symmetric", device: torch.device | str = "cpu"
                   ) -> FullNeighbourhood | NeighbourSampler:
    """The per-batch neighbourhood builder that ``train.propagation`` asks for (``auto``: :func:`choose`)."""
    if choose(graph, fanouts, batch_size, propagation) == "full":
        return FullNeighbourhood(graph, len(fanouts), normalization, device)
    return NeighbourSampler(graph, fanouts, normalization)


@dataclass
class Batch:
    """A training mini-batch ready for the models.

    Attributes:
        blocks: sampled layers, input first; a model with L layers uses ``blocks[-L:]``.
        seeds: (S,) distinct node ids of the batch (a prefix of every block's nodes).
        user_pos: (B,) positions of the batch users among the seeds.
        pos_pos: (B,) positions of the positive items among the seeds.
        neg_pos: (B, N) positions of the negative items among the seeds.
        list_pos: (B, K) positions of the list-wise negatives among the seeds, or None.
        nodes: positions of the batch's own distinct users and items among the seeds, when the seeds
            are more than those (full propagation: every node is a seed); None = all seeds.
        full: a full-propagation batch (:class:`FullNeighbourhood`): every node is a seed, in id
            order, and every block is the whole normalised adjacency (:attr:`full_adj`), so a model
            may propagate over it with whole tables instead of block by block.
    """

    blocks: list[Block]
    seeds: torch.Tensor
    user_pos: torch.Tensor
    pos_pos: torch.Tensor
    neg_pos: torch.Tensor
    list_pos: torch.Tensor | None = None
    nodes: torch.Tensor | None = None
    full: bool = False

    @property
    def full_adj(self) -> SparseAdj | None:
        """The (N, N) normalised adjacency of a full-propagation batch; None for sampled blocks."""
        return self.blocks[-1].adj if self.full else None

    def to(self, device) -> "Batch":
        opt = lambda t: None if t is None else t.to(device)  # noqa: E731
        blocks = {id(b): b.to(device) for b in self.blocks}  # a block repeated over layers moves once
        return Batch([blocks[id(b)] for b in self.blocks], self.seeds.to(device), self.user_pos.to(device),
                     self.pos_pos.to(device), self.neg_pos.to(device), opt(self.list_pos), opt(self.nodes),
                     self.full)

    def own(self, x: torch.Tensor) -> torch.Tensor:
        """The rows of seed-aligned ``x`` that belong to the batch's own users and items."""
        return x if self.nodes is None else x.index_select(0, self.nodes)

    def compact(self) -> "Batch":
        """The batch restated on its own users and items: seeds = those nodes, every position among
        them. A loss that takes :meth:`own` rows of a full-propagation batch's (N, d) outputs once
        and then works on this batch gathers from (S, d) tensors: each gather from an (N, d) output
        costs a zero-filled (N, d) gradient in the backward. A batch without ``nodes`` is returned
        as it is."""
        if self.nodes is None:
            return self
        at = lambda p: None if p is None else torch.searchsorted(self.nodes, p)  # noqa: E731  (nodes ascending)
        return Batch([], self.seeds.index_select(0, self.nodes), at(self.user_pos), at(self.pos_pos),
                     at(self.neg_pos), at(self.list_pos))

    def input_nid(self, num_layers: int) -> torch.Tensor:
        """Node ids whose layer-0 embeddings feed the last ``num_layers`` blocks."""
        return self.blocks[-num_layers].src_nid if num_layers else self.seeds

    def layers(self, num_layers: int) -> list[Block]:
        if num_layers > len(self.blocks):
            raise ValueError(f"model needs {num_layers} sampled layers, the batch has {len(self.blocks)} "
                             "(lengthen train.fanouts)")
        return self.blocks[len(self.blocks) - num_layers:]


def make_batch(users: np.ndarray, pos_items: np.ndarray, neg_items: np.ndarray, num_users: int,
               sampler: NeighbourSampler | FullNeighbourhood | None, list_items: np.ndarray | None = None) -> Batch:
    """Seeds = distinct nodes of (users, positives, negatives[, list negatives]); sample their
    neighbourhoods."""
    if isinstance(sampler, FullNeighbourhood):
        return sampler.batch([users, pos_items + num_users, neg_items + num_users],
                             None if list_items is None else list_items + num_users)
    parts = [users, pos_items + num_users, neg_items.reshape(-1) + num_users]
    if list_items is not None:
        parts.append(list_items.reshape(-1) + num_users)
    seeds, inverse = np.unique(np.concatenate(parts), return_inverse=True)
    seeds_t = torch.from_numpy(seeds)
    inverse = torch.from_numpy(inverse)
    b, n = len(users), neg_items.size
    blocks = sampler.sample(seeds_t) if sampler is not None and sampler.fanouts else []
    list_pos = inverse[2 * b + n:].reshape(list_items.shape) if list_items is not None else None
    return Batch(blocks, seeds_t, inverse[:b], inverse[b:2 * b], inverse[2 * b:2 * b + n].reshape(neg_items.shape),
                 list_pos)
