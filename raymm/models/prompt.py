"""PromptMM's soft prompt (Wei et al., "PromptMM: Multi-Modal Knowledge Distillation for
Recommendation with Prompt-Tuning", WWW 2024, https://arxiv.org/abs/2402.17188, Sec. 3.2).

Hard tokens are fixed, computed once from the modality features; the soft prompt is the only set of
prompt parameters.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raymm.graph import TrainGraph


def pca(x: np.ndarray, k: int) -> np.ndarray:
    """Projection of the rows of ``x`` (n, d) on its top-``k`` principal components -> (n, k).

    Deterministic: eigen-decomposition of the covariance, each component's sign fixed so that its
    largest-magnitude entry is positive.
    """
    if k > x.shape[1]:
        raise ValueError(f"prompt size k={k} exceeds the feature dimension {x.shape[1]}: "
                         "PCA cannot give more components than dimensions")
    xc = (x - x.mean(0)).astype(np.float64)
    cov = xc.T @ xc / max(len(x) - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    top = vecs[:, np.argsort(vals)[::-1][:k]]
    top *= np.sign(top[np.abs(top).argmax(0), np.arange(k)])
    return (xc @ top).astype(np.float32)


def hard_tokens(features: dict[str, np.ndarray], graph: TrainGraph, k: int, user_mode: str = "mean"
                ) -> tuple[np.ndarray, np.ndarray]:
    """Hard tokens (PromptMM Sec. 3.2, step 1).

    ``H_i = mean_m PCA_k(X^m)`` over all items; ``H_u`` = mean of ``H_i`` over the user's training
    items (``user_mode="mean"``, the paper), or the public code's ``D_u^-1/2``-scaled sum
    (``user_mode="scaled_sum"``). Users without training items get zeros.

    Returns:
        (H_u (U, k), H_i (I, k)) float32.
    """
    h_item = np.mean([pca(x, k) for x in features.values()], axis=0).astype(np.float32)
    indptr, items = graph.user_items()
    counts = np.diff(indptr)
    sums = np.zeros((graph.num_users, k), dtype=np.float64)
    np.add.at(sums, np.repeat(np.arange(graph.num_users), counts), h_item[items])
    if user_mode == "mean":
        scale = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    elif user_mode == "scaled_sum":
        scale = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    else:
        raise ValueError(f"user_mode must be 'mean' or 'scaled_sum', got {user_mode!r}")
    return (sums * scale[:, None]).astype(np.float32), h_item


class SoftPrompt(nn.Module):
    r"""Soft prompt :math:`f_P` (PromptMM Sec. 3.2, step 2).

    .. math::
        P_i = \mathrm{Dropout}(W_i H_i + b_i), \qquad P_u = \mathrm{Dropout}(W_u H_u + b_u)

    The hard tokens are buffers (saved with the module); ``W_u, W_i: k -> d`` are the only prompt
    parameters.

    Args:
        h_user: (U, k) user hard tokens.
        h_item: (I, k) item hard tokens.
        dim: d.
        dropout: dropout probability.

    Example::

        prompt = SoftPrompt(torch.zeros(5, 4), torch.zeros(7, 4), dim=3)
        p = prompt(torch.tensor([0, 6]))  # node ids (users 0..4, items 5..11) -> (2, 3)
    """

    def __init__(self, h_user: torch.Tensor, h_item: torch.Tensor, dim: int, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("h_user", torch.tensor(np.asarray(h_user), dtype=torch.float32))  # a copy: may be read-only
        self.register_buffer("h_item", torch.tensor(np.asarray(h_item), dtype=torch.float32))
        k = self.h_user.shape[1]
        self.user = nn.Linear(k, dim)
        self.item = nn.Linear(k, dim)
        self.dropout = nn.Dropout(dropout)

    @property
    def num_users(self) -> int:
        return self.h_user.shape[0]

    def items(self, item_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(n, d) item prompts P_i (all items when ``item_ids`` is None)."""
        h = self.h_item if item_ids is None else self.h_item[item_ids]
        return self.dropout(self.item(h))

    def users(self, user_ids: torch.Tensor | None = None) -> torch.Tensor:
        h = self.h_user if user_ids is None else self.h_user[user_ids]
        return self.dropout(self.user(h))

    def forward(self, node_ids: torch.Tensor) -> torch.Tensor:
        """(n, d) prompts of graph nodes (users ``< U``, items ``>= U``)."""
        is_user = node_ids < self.num_users
        out = torch.empty(len(node_ids), self.user.out_features, device=node_ids.device, dtype=self.h_user.dtype)
        out[is_user] = self.users(node_ids[is_user])
        out[~is_user] = self.items(node_ids[~is_user] - self.num_users)
        return out
