"""ODMT's losses (Ji et al., ACM MM 2023, Sec. 3.3-3.4; ``../shared/docs/methods.md``, "ODMT")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def inclusion_log_prob(pop: torch.Tensor, draws: int) -> torch.Tensor:
    """(C,) training frequencies p of the batch's distinct items, ``draws`` = n item occurrences in
    the batch -> (C,) log P(item among the batch) = log(1 - (1 - p)^n).

    This is the log-Q correction of sampled softmax for a candidate set of distinct items. For a large
    catalogue (n p << 1) it is log p + log n, the public code's "minus log popularity" up to a constant
    that cancels in the softmax; for an item that every batch holds it tends to 0, so a batch that
    covers the whole catalogue is scored as a full softmax instead of over-penalising popular items."""
    return torch.log(-torch.expm1(draws * torch.log1p(-pop.clamp(max=1 - 1e-7))))


def in_batch_logits(states: torch.Tensor, cand_vec: torch.Tensor, labels: torch.Tensor,
                    not_negative: torch.Tensor | None, log_q: torch.Tensor) -> torch.Tensor:
    """Popularity-debiased in-batch logits (Ji et al. 2023, Sec. 3.3): every target position is
    scored against every distinct item of the batch's segments.

    (N, d) states of the N target positions, (C, d) candidate item vectors, (N,) index of each
    position's target among the candidates, (N, C) bool ``not_negative`` (e.g. the candidate is in the
    same user's segment; None: no such candidate), (C,) log inclusion probability of each candidate
    (:func:`inclusion_log_prob`; zeros: no debiasing) -> (N, C) logits ``<s_n, v_c> - log_q(c)``; a ``not_negative`` candidate
    other than the position's target gets -inf."""
    logits = states @ cand_vec.T - log_q[None, :]
    if not_negative is None:  # every other candidate is a negative
        return logits
    not_label = torch.arange(len(log_q), device=labels.device)[None, :] != labels[:, None]
    return logits.masked_fill(not_negative & not_label, -torch.inf)


def in_batch_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of each row's target column: (N, C) logits, (N,) column indices."""
    return F.cross_entropy(logits, labels)


def online_kd(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """KD(S <- T) = tau^2 * CE(softmax(T / tau), log_softmax(S / tau)), teacher detached; -inf
    (masked) entries contribute nothing."""
    p = torch.softmax(teacher.detach() / tau, dim=-1)
    log_q = torch.log_softmax(student / tau, dim=-1).masked_fill(torch.isinf(student), 0.0)
    return tau ** 2 * -(p * log_q).sum(-1).mean()


def ramp_up(epoch: int, length: int) -> float:
    """Sigmoid ramp-up exp(-5 (1 - min(epoch, a) / a)^2) (a = ``length`` epochs; 1 when a = 0)."""
    if length <= 0:
        return 1.0
    t = min(epoch, length) / length
    return math.exp(-5.0 * (1.0 - t) ** 2)
