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


# Most scores held at once (user rows x item columns): 2^24 float32 = 64 MB. A user batch against a
# larger catalogue is scored in item chunks with a running top-k, so memory does not grow with it.
SCORE_BLOCK = 1 << 24


@torch.no_grad()
def topk_excluding(user_emb: torch.Tensor, item_emb: torch.Tensor, users: np.ndarray,
                   exclude: tuple[np.ndarray, np.ndarray], k: int, batch_size: int = 1024, with_scores: bool = False,
                   score_block: int = SCORE_BLOCK):
    """Top-k items per user with each user's ``exclude`` items (CSR: indptr (U+1,), item ids) masked.

    Users go ``batch_size`` at a time; each batch is scored against item chunks of
    ``max(k, score_block // batch)`` columns, keeping a running top-k, so at most about
    ``score_block`` scores exist at once whatever the number of items.
    A NaN score (a diverged model) ranks lowest, like a masked item: its score comes back as -inf."""
    indptr, train_items = exclude
    out, vals = [], []
    num_items = item_emb.shape[0]
    k = min(k, num_items)
    for start in range(0, len(users), batch_size):
        chunk = users[start:start + batch_size]
        u = user_emb[torch.tensor(chunk, device=user_emb.device)]  # chunk may be read-only
        counts = indptr[chunk + 1] - indptr[chunk]
        rows = torch.from_numpy(np.repeat(np.arange(len(chunk)), counts)).to(u.device)
        cols = torch.from_numpy(np.concatenate([train_items[indptr[v]:indptr[v + 1]] for v in chunk])
                                if counts.sum() else np.zeros(0, np.int64)).to(u.device)
        width = max(k, score_block // max(len(chunk), 1))
        best_s = best_i = None
        for lo in range(0, num_items, width):
            hi = min(lo + width, num_items)
            scores = torch.nan_to_num(u @ item_emb[lo:hi].T, nan=-torch.inf)  # (b, hi - lo)
            inside = (cols >= lo) & (cols < hi)
            scores[rows[inside], cols[inside] - lo] = -torch.inf
            top = torch.topk(scores, min(k, hi - lo), dim=1)
            idx = top.indices + lo
            if best_s is not None:  # merge with the running top-k (earlier chunks first: stable ties)
                merged = torch.topk(torch.cat([best_s, top.values], 1), k, dim=1)
                idx = torch.gather(torch.cat([best_i, idx], 1), 1, merged.indices)
                top = merged
            best_s, best_i = top.values, idx
        out.append(best_i)
        vals.append(best_s)
    if not out:
        empty = torch.zeros(0, k, dtype=torch.long, device=user_emb.device)
        return (empty, empty.float()) if with_scores else empty
    return (torch.cat(out), torch.cat(vals)) if with_scores else torch.cat(out)


@torch.no_grad()
def metric_sums(user_emb: torch.Tensor, item_emb: torch.Tensor, split: EvalSplit, graph: TrainGraph,
                ks: list[int], batch_size: int = 1024) -> torch.Tensor:
    """Per-metric sums over the split's users, in :func:`metric_names` order, then the user count.

    Users are processed ``batch_size`` at a time against item chunks (:func:`topk_excluding`), so
    memory is bounded whatever the number of users and items.

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
