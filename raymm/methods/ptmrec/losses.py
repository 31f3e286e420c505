"""PTMRec's knowledge-transfer term (Zhang et al. 2025, Sec. "knowledge transfer"; restated in
``../shared/docs/methods.md``, "PTMRec"): within a batch, the similarity distribution the stage-1
recommender gives each anchor over the batch's items, matched by the one the tuned encoder's
features give."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_logits(anchors: torch.Tensor, items: torch.Tensor, exclude_diagonal: bool = False) -> torch.Tensor:
    """(n, d) anchors, (m, d) items -> (n, m) cosine similarities; with ``exclude_diagonal`` (anchors
    are the items themselves, n = m) an item's similarity to itself is -inf (not in its distribution)."""
    sim = F.normalize(anchors, dim=-1) @ F.normalize(items, dim=-1).T
    if exclude_diagonal:
        sim = sim.masked_fill(torch.eye(len(sim), dtype=torch.bool, device=sim.device), -torch.inf)
    return sim


def similarity_kl(teacher: torch.Tensor, student: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(P || Q) averaged over rows, P = softmax(teacher / tau) (detached: the stage-1 model is
    fixed), Q = softmax(student / tau); (n, m) similarity logits each, -inf entries (the same in
    both) are outside the distributions. Zero exactly when every row's distributions agree."""
    p_log = torch.log_softmax(teacher.detach() / tau, dim=-1)
    q_log = torch.log_softmax(student / tau, dim=-1)
    inside = torch.isfinite(teacher)
    terms = torch.where(inside, p_log.exp() * (p_log - q_log), torch.zeros_like(q_log))
    return terms.sum(-1).mean()
