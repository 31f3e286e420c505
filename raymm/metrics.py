"""Top-K ranking metrics from hit matrices.

Each function takes ``hits`` (n, K_max) bool (``hits[u, r]``: the item at rank r, 0-based, is
relevant for user u) and ``num_relevant`` (n,) and returns per-user values (n,) at cut-off k.
Standard definitions: binary gains; NDCG's ideal DCG sums over ``min(|relevant|, k)`` positions.
"""

from __future__ import annotations

import torch


def recall_at_k(hits: torch.Tensor, num_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """|relevant in top-k| / |relevant|."""
    return hits[:, :k].sum(1).float() / num_relevant.float()


def precision_at_k(hits: torch.Tensor, num_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """|relevant in top-k| / k."""
    return hits[:, :k].sum(1).float() / k


def hit_at_k(hits: torch.Tensor, num_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """1 if any relevant item is in the top-k."""
    return hits[:, :k].any(1).float()


def ndcg_at_k(hits: torch.Tensor, num_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """DCG@k / IDCG@k with gains 1/log2(rank+2) and IDCG over min(|relevant|, k) positions."""
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32, device=hits.device))
    dcg = (hits[:, :k].float() * discount).sum(1)
    ideal_len = num_relevant.clamp(max=k)
    idcg = torch.cumsum(discount, 0)[ideal_len - 1]
    return dcg / idcg


def mrr_at_k(hits: torch.Tensor, num_relevant: torch.Tensor, k: int) -> torch.Tensor:
    """1 / (rank of the first relevant item + 1) when it is in the top-k, else 0."""
    top = hits[:, :k]
    first = top.float().argmax(1)
    return torch.where(top.any(1), 1.0 / (first + 1).float(), torch.zeros_like(first, dtype=torch.float32))


METRICS = {"recall": recall_at_k, "ndcg": ndcg_at_k, "precision": precision_at_k, "hit": hit_at_k, "mrr": mrr_at_k}
