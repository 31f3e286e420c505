"""ODMT's losses (Ji et al., ACM MM 2023, Sec. 3.3-3.4; ``../shared/docs/methods.md``, "ODMT")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def in_batch_logits(states: torch.Tensor, cand_vec: torch.Tensor, cand_ids: torch.Tensor, labels: torch.Tensor,
                    own: torch.Tensor, log_pop: torch.Tensor) -> torch.Tensor:
    """Popularity-debiased in-batch logits, as the public code: every target position is scored
    against every distinct item of the batch's segments.

    (N, d) states of the N target positions, (C, d) candidate item vectors, (C,) candidate item ids,
    (N,) index of each position's target among the candidates, (N, C) bool ``own``: the candidate is
    in the same user's segment, (I,) log item popularity -> (N, C) logits ``<s_n, v_c> - log pop(c)``;
    a candidate from the position's own segment other than its target is not a negative (-inf)."""
    logits = states @ cand_vec.T - log_pop[cand_ids][None, :]
    not_label = torch.arange(len(cand_ids), device=labels.device)[None, :] != labels[:, None]
    return logits.masked_fill(own & not_label, -torch.inf)


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
