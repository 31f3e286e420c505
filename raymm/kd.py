"""PromptMM's distillation losses (Wei et al., WWW 2024, https://arxiv.org/abs/2402.17188, Sec. 3.3;
../shared/docs/promptmm.md, "Stage 2"), and the public code's forms for parity mode.

Paper mode:

(i)   pairwise ranking KD:  p = sigmoid((s(u,i+) - s(u,i-)) / tau_pair),
      L_pair = mean KL(Bernoulli(p^T) || Bernoulli(p^S))
(ii)  disentangled, modality-aware list-wise KD over [i+, i-_1..i-_K], z = <e_u, e_j> / tau_list:
      b = (softmax(z)_0, 1 - softmax(z)_0), q = softmax(z_1..K),
      L_list = tau_list^2 * sum_m mean_u [ KL(b^{T,m} || b^S) + b^{T,m}_1 * KL(q^{T,m} || q^S) ]
      where b^{T,m}_1 (the teacher's non-target mass) is the modality-aware re-weighting
(iii) modality-aware embedding KD: L_emb = sum_m mean (1 - cos(f^m, e^S))^gamma
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


def _bernoulli_kl(logit_p: torch.Tensor, logit_q: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(Bernoulli(sigmoid(logit_p)) || Bernoulli(sigmoid(logit_q)))."""
    p = torch.sigmoid(logit_p)
    return (p * (F.logsigmoid(logit_p) - F.logsigmoid(logit_q))
            + (1 - p) * (F.logsigmoid(-logit_p) - F.logsigmoid(-logit_q)))


def pairwise_kd(teacher_diff: torch.Tensor, student_diff: torch.Tensor, tau: float) -> torch.Tensor:
    """Pairwise ranking KD (PromptMM eq. for L_pair, "collaborative KD").

    Args:
        teacher_diff: (B,) or (B, N) teacher score differences s^T(u,i+) - s^T(u,i-).
        student_diff: same shape, student differences.
        tau: temperature tau_pair.

    Returns:
        scalar mean KL(Bern(p^T) || Bern(p^S)).
    """
    return _bernoulli_kl(teacher_diff / tau, student_diff / tau).mean()


def listwise_kd(teacher_logits: dict[str, torch.Tensor], student_logits: torch.Tensor, tau: float,
                reweight: bool = True) -> torch.Tensor:
    """Disentangled, modality-aware list-wise KD (PromptMM's L_list), target at column 0.

    Args:
        teacher_logits: modality -> (B, K+1) raw scores <f_u^m, f_j^m> (not yet divided by tau).
        student_logits: (B, K+1) raw student scores <e^S_u, e^S_j>.
        tau: temperature tau_list.
        reweight: multiply the non-target term by the teacher's non-target mass b^{T,m}_1
            (treated as a constant weight); False gives the "w/o re-weighting" ablation.

    Returns:
        scalar.
    """
    zs = student_logits / tau
    log_bs = _binary_log_probs(zs)  # (B, 2)
    log_qs = F.log_softmax(zs[:, 1:], dim=1)  # (B, K)
    total = zs.new_zeros(())
    for zt in teacher_logits.values():
        zt = zt / tau
        log_bt = _binary_log_probs(zt)
        bt = log_bt.exp()
        tckd = (bt * (log_bt - log_bs)).sum(1)  # KL(b^T || b^S)
        log_qt = F.log_softmax(zt[:, 1:], dim=1)
        nckd = (log_qt.exp() * (log_qt - log_qs)).sum(1)  # KL(q^T || q^S)
        weight = bt[:, 1].detach() if reweight else torch.ones_like(nckd)
        total = total + (tckd + weight * nckd).mean()
    return tau ** 2 * total


def _binary_log_probs(z: torch.Tensor) -> torch.Tensor:
    """(B, 2) log (softmax(z)_0, 1 - softmax(z)_0), computed stably from logits z (B, K+1)."""
    lse = torch.logsumexp(z, dim=1)
    return torch.stack([z[:, 0] - lse, torch.logsumexp(z[:, 1:], dim=1) - lse], dim=1)


def sce(x: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Scaled cosine error mean (1 - cos(x, y))^gamma over rows (GraphMAE; PromptMM's L_emb term)."""
    return (1 - F.cosine_similarity(x, y, dim=-1)).pow(gamma).mean()


def embedding_kd(teacher_modal: dict[str, torch.Tensor], student: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Modality-aware embedding KD: sum_m SCE(f^m, e^S) over the given rows (users and items)."""
    return sum(sce(f, student, gamma) for f in teacher_modal.values())


# --- parity mode: the public code's forms (HKUDS/PromptMM, codes/main.py) -----------------------

def parity_kl(student_values: torch.Tensor, teacher_values: torch.Tensor) -> torch.Tensor:
    """``nn.KLDivLoss()(student, teacher)`` on loss VALUES, reduction mean over all elements:
    mean(t * (log t - s)). Not a KL between distributions; temperatures are unused."""
    with warnings.catch_warnings():  # torch warns that 'mean' is not 'batchmean': reproduced on purpose
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(student_values, teacher_values, reduction="mean")


def parity_pairwise_kd(teacher_diff: torch.Tensor, student_diff: torch.Tensor) -> torch.Tensor:
    """Public code's pairwise term: KLDivLoss on per-sample BPR loss values -logsigmoid(diff)."""
    return parity_kl(-F.logsigmoid(student_diff), -F.logsigmoid(teacher_diff))


def parity_listwise_kd(teacher_logits: dict[str, torch.Tensor], student_logits: torch.Tensor) -> torch.Tensor:
    """Public code's list-wise term: per modality, KLDivLoss on -log(softmax + 1e-8) values."""
    s = -(student_logits.softmax(-1) + 1e-8).log()
    return sum(parity_kl(s, -(t.softmax(-1) + 1e-8).log()) for t in teacher_logits.values())
