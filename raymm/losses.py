"""Recommendation losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(user: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    r"""Bayesian Personalised Ranking (Rendle et al., UAI 2009, eq. 4; LightGCN eq. 15).

    :math:`L = -\frac{1}{BN} \sum_{u,i,j} \ln \sigma(\langle e_u, e_i \rangle - \langle e_u, e_j \rangle)`

    Args:
        user: (B, d) user embeddings.
        pos: (B, d) positive item embeddings.
        neg: (B, N, d) negative item embeddings (N negatives per positive) or (B, d).

    Returns:
        scalar mean loss.
    """
    if neg.dim() == 2:
        neg = neg.unsqueeze(1)
    pos_score = (user * pos).sum(-1, keepdim=True)  # (B, 1)
    neg_score = torch.einsum("bd,bnd->bn", user, neg)  # (B, N)
    return -F.logsigmoid(pos_score - neg_score).mean()


def l2_penalty(*embeddings: torch.Tensor) -> torch.Tensor:
    r"""LightGCN's regulariser on the layer-0 embeddings of a batch:
    :math:`\frac{1}{2B} \sum \lVert e^{(0)} \rVert^2` with B the first dimension of the first tensor."""
    b = embeddings[0].shape[0]
    return sum(e.pow(2).sum() for e in embeddings) / (2 * b)
