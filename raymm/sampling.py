"""Mini-batch sampling on the CPU with DGL: negatives and neighbourhood blocks.

A training mini-batch is ``(users, positive items, negative items)``. Its seed nodes (the distinct
users and items) are expanded layer by layer with DGL neighbour sampling; each layer becomes a
:class:`Block` of plain torch tensors that the model runs on any device (DGL from PyPI is CPU-only).

Edge weights make sampled propagation match full-graph propagation in expectation: an edge
``j -> i`` sampled among ``s_i`` of ``i``'s ``d_i`` neighbours (uniformly, without replacement)
carries ``(d_i / s_i) * d_i^-1/2 d_j^-1/2``, with FULL-graph degrees ``d``. Each neighbour is in the
sample with probability ``s_i / d_i``, so ``E[sum_sampled w_ij h_j] = sum_all d_i^-1/2 d_j^-1/2 h_j``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from raymm.graph import TrainGraph


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
    """

    src_nid: torch.Tensor
    num_dst: int
    edge_src: torch.Tensor
    edge_dst: torch.Tensor
    edge_weight: torch.Tensor

    def to(self, device: torch.device | str) -> "Block":
        return Block(self.src_nid.to(device), self.num_dst, self.edge_src.to(device), self.edge_dst.to(device),
                     self.edge_weight.to(device))


class NegativeSampler:
    """Uniform negative items that are never one of the user's training positives."""

    def __init__(self, graph: TrainGraph, seed: int = 0, max_rounds: int = 100):
        self.num_items = graph.num_items
        self.keys = graph.positive_keys()
        self.rng = np.random.default_rng(seed)
        self.max_rounds = max_rounds

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.num_items + items
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
        self.degree = torch.from_numpy(graph.degree.copy())
        self.inv_sqrt = graph.inv_sqrt_degree()
        # 'left' (PromptMM's public code): only the destination side is scaled, D^-1/2 A.
        self.src_scale = self.inv_sqrt if normalization == "symmetric" else torch.ones_like(self.inv_sqrt)

    def sample(self, seeds: torch.Tensor) -> list[Block]:
        """Blocks for distinct seed node ids ``seeds`` (n,), input layer first."""
        import dgl

        blocks: list[Block] = []
        frontier_nodes = seeds
        for fanout in reversed(self.fanouts):
            frontier = dgl.sampling.sample_neighbors(self.g, frontier_nodes, fanout)
            block = dgl.to_block(frontier, frontier_nodes)
            src_nid = block.srcdata[dgl.NID]
            dst_nid = block.dstdata[dgl.NID]
            es, ed = block.edges()
            sampled = block.in_degrees().to(torch.float32)
            d = dst_nid[ed]
            weight = self.src_scale[src_nid[es]] * self.inv_sqrt[d] * (self.degree[d] / sampled[ed])
            blocks.insert(0, Block(src_nid, len(dst_nid), es, ed, weight))
            frontier_nodes = src_nid
        return blocks


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
    """

    blocks: list[Block]
    seeds: torch.Tensor
    user_pos: torch.Tensor
    pos_pos: torch.Tensor
    neg_pos: torch.Tensor
    list_pos: torch.Tensor | None = None

    def to(self, device) -> "Batch":
        return Batch([b.to(device) for b in self.blocks], self.seeds.to(device), self.user_pos.to(device),
                     self.pos_pos.to(device), self.neg_pos.to(device),
                     None if self.list_pos is None else self.list_pos.to(device))

    def input_nid(self, num_layers: int) -> torch.Tensor:
        """Node ids whose layer-0 embeddings feed the last ``num_layers`` blocks."""
        return self.blocks[-num_layers].src_nid if num_layers else self.seeds

    def layers(self, num_layers: int) -> list[Block]:
        if num_layers > len(self.blocks):
            raise ValueError(f"model needs {num_layers} sampled layers, the batch has {len(self.blocks)} "
                             "(lengthen train.fanouts)")
        return self.blocks[len(self.blocks) - num_layers:]


def make_batch(users: np.ndarray, pos_items: np.ndarray, neg_items: np.ndarray, num_users: int,
               sampler: NeighbourSampler | None, list_items: np.ndarray | None = None) -> Batch:
    """Seeds = distinct nodes of (users, positives, negatives[, list negatives]); sample their
    neighbourhoods."""
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
