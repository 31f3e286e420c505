"""SGFD's teacher extractors, classifiers and losses around a backbone (Liu et al., "Semantic-Guided
Feature Distillation for Multimodal Recommendation", ACM MM 2023, https://arxiv.org/abs/2308.03113,
Sec. 3; restated in ``../shared/docs/methods.md``, "SGFD").

For the items of a batch, with labels y and per modality m the teacher features f^t_m = T_m(x^m)
and the student features f^s_m = S_m(x^m) (the backbone's own extractor):

    L_ce = sum_m CE(C_m(f^t_m), y) + CE(C_f([f^t_1; ...; f^t_M]), y)
    L_kd = sum_m L1(softmax(C_m(f^t_m) / T), softmax(C_m(f^s_m) / T)) + MSE(f^s_m, f^t_m)
    L    = L_rec + w_ce L_ce + w_kd L_kd

C_m is shared by T_m and S_m; C_f is Linear(M d -> d), LeakyReLU, Linear(d -> #labels). As in the
public code, the KD terms are not detached: they pull the teacher and the student together.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from raymm.models.extractors import TeacherExtractor


class SGFDHead(nn.Module):
    """Teacher extractors T_m, classifiers C_m and the fusion classifier C_f.

    Args:
        feature_dims: modality -> d_m.
        dim: d (the student extractor's output size).
        num_labels: number of semantic labels.
        fusion: build C_f (False: the "w/o fusion" ablation).
        teachers: build T_m (False when neither CE nor KD needs them).

    Example::

        head = SGFDHead({"image": 64, "text": 96}, dim=8, num_labels=5)
        ce, kd = head.losses(raw, student_feats, labels, temperature=10.0)
    """

    def __init__(self, feature_dims: dict[str, int], dim: int, num_labels: int, fusion: bool = True):
        super().__init__()
        self.modalities = sorted(feature_dims)
        self.teachers = nn.ModuleDict({m: TeacherExtractor(feature_dims[m], dim) for m in self.modalities})
        self.classifiers = nn.ModuleDict({m: nn.Linear(dim, num_labels) for m in self.modalities})
        self.fusion = (nn.Sequential(nn.Linear(len(self.modalities) * dim, dim), nn.LeakyReLU(),
                                     nn.Linear(dim, num_labels)) if fusion else None)

    def ce_loss(self, teacher: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """L_ce for (n, d) teacher features per modality and (n,) labels."""
        loss = sum(F.cross_entropy(self.classifiers[m](teacher[m]), labels) for m in self.modalities)
        if self.fusion is not None:
            loss = loss + F.cross_entropy(self.fusion(torch.cat([teacher[m] for m in self.modalities], 1)), labels)
        return loss

    def kd_loss(self, teacher: dict[str, torch.Tensor], student: dict[str, torch.Tensor],
                temperature: float) -> torch.Tensor:
        """L_kd for (n, d) teacher and student features per modality."""
        loss = 0.0
        for m in self.modalities:
            c = self.classifiers[m]
            p_t = F.softmax(c(teacher[m]) / temperature, dim=-1)
            p_s = F.softmax(c(student[m]) / temperature, dim=-1)
            loss = loss + F.l1_loss(p_s, p_t) + F.mse_loss(student[m], teacher[m])
        return loss

    def teacher_features(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.teachers[m](raw[m]) for m in self.modalities}


class SGFDModel(nn.Module):
    """Training container: the backbone (which consumes the student features and is what is
    served), the SGFD head (None for the backbone alone) and the (I,) item labels (a non-persistent
    buffer: on the training device once, not saved)."""

    def __init__(self, backbone: nn.Module, head: SGFDHead | None, labels: torch.Tensor | None = None):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.register_buffer("labels", labels, persistent=False)

    def forward(self, batch):
        return self.backbone(batch)
