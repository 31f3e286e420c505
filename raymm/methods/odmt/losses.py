"""ODMT's losses (Ji et al., ACM MM 2023, Sec. 3.3-3.4; ``../shared/docs/methods.md``, "ODMT")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def in_batch_logits(states: torch.Tensor, targets_vec: torch.Tensor, targets: torch.Tensor,
                    log_pop: torch.Tensor) -> torch.Tensor:
    """(B, d) states, (B, d) target item vectors, (B,) target ids, (I,) log item popularity ->
    (B, B) popularity-debiased in-batch logits ``<s_a, v_b> - log pop(b)``; a column whose item is
    the row's own target but not on the diagonal (a repeated target) is masked to -inf."""
    logits = states @ targets_vec.T - log_pop[targets][None, :]
    same = targets[:, None] == targets[None, :]
    same.fill_diagonal_(False)
    return logits.masked_fill(same, -torch.inf)


def in_batch_ce(logits: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy with each row's own target on the diagonal."""
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


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
