"""Efficiency report: parameter counts, training time per epoch, and serving latency of top-K over
all items, teacher vs student (the point of distillation: a far smaller, faster served model).

Latency is measured in the calling process on its device, median of ``repeats`` runs after one
warm-up, for ``num_users`` users:

- ``from_weights``: compute the embeddings from the saved weights (the teacher runs its modality
  encoders and both GNNs over the full graph; the student runs LightGCN propagation), then score
  and take the top-K;
- ``from_tables``: score and take the top-K from exported final embedding tables (what a serving
  system keeps for an ID-only model).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn

from raymm.evaluation import topk_items
from raymm.graph import TrainGraph
from raymm.sparse import SparseAdj


def count_parameters(module: nn.Module, exclude_prefix: str | None = None) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if not (exclude_prefix and n.startswith(exclude_prefix)))


def _median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.no_grad()
def serving_latency(model: nn.Module, adj: SparseAdj, graph: TrainGraph, num_users: int = 1000, k: int = 20,
                    repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """Seconds for top-``k`` over all items for ``num_users`` random users (see module docstring)."""
    model.eval()
    users = np.sort(np.random.default_rng(seed).choice(graph.num_users, min(num_users, graph.num_users), replace=False))
    u_tab, i_tab = model.full_embeddings(adj)

    def from_weights():
        u, i = model.full_embeddings(adj)
        topk_items(u, i, users, graph, k)

    return {"from_weights_s": _median_seconds(from_weights, repeats),
            "from_tables_s": _median_seconds(lambda: topk_items(u_tab, i_tab, users, graph, k), repeats),
            "users": int(len(users)), "k": k}
