"""Full-ranking evaluation: every evaluated user is scored against ALL items, training positives
masked out; per-user metrics are summed so that shards evaluated on different workers can be
reduced (sum of sums, sum of counts) into exact averages."""

from __future__ import annotations

import numpy as np
import torch

from raymm.graph import EvalSplit, TrainGraph
from raymm.metrics import METRICS


def metric_names(ks: list[int]) -> list[str]:
    return [f"{name}@{k}" for name in METRICS for k in ks]


@torch.no_grad()
def topk_items(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray, graph: TrainGraph, k: int,
               batch_size: int = 1024, with_scores: bool = False):
    """(len(users), k) item ids of the top-k scores <e_u, e_i>, training items excluded (and the
    scores, with ``with_scores``)."""
    return topk_excluding(user_emb, item_emb, users, graph.user_items(), k, batch_size, with_scores)


@torch.no_grad()
def topk_excluding(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray,
                   exclude: tuple[np.ndarray, np.ndarray], k: int, batch_size: int = 1024, with_scores: bool = False):
    """Top-k items per user with each user's ``exclude`` items (CSR: indptr (U+1,), item ids) masked.

    A NaN score (a diverged model) ranks lowest, like a masked item: its score comes back as -inf."""
    indptr, train_items = exclude
    out, vals = [], []
    k = min(k, item_emb.shape[0])
    for start in range(0, len(users), batch_size):
        chunk = users[start:start + batch_size]
        scores = user_emb[torch.tensor(chunk, device=user_emb.device)] @ item_emb.T  # (b, I); chunk may be read-only
        scores = torch.nan_to_num(scores, nan=-torch.inf)
        counts = indptr[chunk + 1] - indptr[chunk]
        rows = np.repeat(np.arange(len(chunk)), counts)
        cols = np.concatenate([train_items[indptr[u]:indptr[u + 1]] for u in chunk]) if counts.sum() else \
            np.zeros(0, np.int64)
        scores[torch.from_numpy(rows).to(scores.device), torch.from_numpy(cols).to(scores.device)] = -torch.inf
        top = torch.topk(scores, k, dim=1)
        out.append(top.indices)
        vals.append(top.values)
    if not out:
        empty = torch.zeros(0, k, dtype=torch.long, device=user_emb.device)
        return (empty, empty.float()) if with_scores else empty
    return (torch.cat(out), torch.cat(vals)) if with_scores else torch.cat(out)


@torch.no_grad()
def metric_sums(user_emb: torch.Tensor, item_emb: torch.Tensor, split: EvalSplit, graph: TrainGraph,
                ks: list[int], batch_size: int = 1024) -> torch.Tensor:
    """Per-metric sums over the split's users, in :func:`metric_names` order, then the user count.

    Users are processed ``batch_size`` at a time; memory is O(batch_size x num_items).

    Returns:
        (len(metric_names(ks)) + 1,) float64 tensor on the embeddings' device.
    """
    kmax = max(ks)
    device = user_emb.device
    sums = torch.zeros(len(METRICS) * len(ks) + 1, dtype=torch.float64, device=device)
    num_items = item_emb.shape[0]
    num_rel_all = np.diff(split.indptr)
    eval_keys = torch.from_numpy(np.repeat(split.users, num_rel_all) * num_items + split.items).to(device)  # sorted
    for start in range(0, len(split.users), batch_size):
        users = split.users[start:start + batch_size]
        top, score = topk_items(user_emb, item_emb, users, graph, kmax, batch_size, with_scores=True)  # (b, <=kmax)
        keys = torch.tensor(users, device=device).unsqueeze(1) * num_items + top  # users: a read-only slice
        pos = torch.searchsorted(eval_keys, keys).clamp(max=len(eval_keys) - 1)
        hits = (eval_keys[pos] == keys) & (score > -torch.inf)  # a NaN or masked score is never a hit
        add_metric_sums(sums, hits, torch.from_numpy(num_rel_all[start:start + batch_size]).to(device), ks)
    return sums


def add_metric_sums(sums: torch.Tensor, hits: torch.Tensor, num_rel: torch.Tensor, ks: list[int]) -> None:
    """Add a batch's per-metric sums (:func:`metric_names` order) and its row count to ``sums``:
    (n, <= max(ks)) bool hits (padded here when there are fewer items than max(ks)), (n,) relevant counts."""
    kmax = max(ks)
    if hits.shape[1] < kmax:
        hits = torch.cat([hits, hits.new_zeros(len(hits), kmax - hits.shape[1])], 1)
    i = 0
    for fn in METRICS.values():
        for k in ks:
            sums[i] += fn(hits, num_rel, k).double().sum()
            i += 1
    sums[-1] += len(hits)


def finalize(sums: torch.Tensor, ks: list[int]) -> dict[str, float]:
    """Averages from (possibly all-reduced) :func:`metric_sums`."""
    count = float(sums[-1])
    names = metric_names(ks)
    return {name: (float(sums[i]) / count if count else 0.0) for i, name in enumerate(names)}
