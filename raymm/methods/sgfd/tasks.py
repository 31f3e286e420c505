"""SGFD's single joint stage: the backbone trained on the student features with BPR, plus SGFD's
CE and KD terms on the batch's positive items (equations in :mod:`raymm.methods.sgfd.model`)."""

from __future__ import annotations

import torch
from torch import nn

from raymm.losses import bpr_loss, l2_penalty
from raymm.methods.base import Task, triplet
from raymm.methods.sgfd.model import SGFDHead, SGFDModel
from raymm.models.lightgcn_m import LightGCNM
from raymm.models.promptmm import PromptMMTeacher


def student_extractors(backbone: nn.Module) -> nn.ModuleDict:
    """The backbone's per-modality student extractors S_m."""
    return backbone.extractors if isinstance(backbone, LightGCNM) else backbone.reducers


class SGFDTask(Task):
    """``L = BPR + train.reg_weight ||E_batch||^2 + w_ce L_ce + w_kd L_kd`` (Liu et al., ACM MM 2023,
    Sec. 3.4; the backbone's L_rec is BPR here)."""

    def build(self) -> nn.Module:
        opts, m, g = self.cfg.method.sgfd, self.cfg.model, self.graph
        feats = self.shared.features  # the models copy them into their own buffers
        if opts.backbone == "lightgcn_m":
            backbone = LightGCNM(g.num_users, g.num_items, feats, m.embedding_dim, m.num_layers, opts.feature_weight,
                                 m.init_std, self.normalization)
        else:  # the PromptMM teacher (no prompt) whose feature reduction f_R is SGFD's student extractor
            backbone = PromptMMTeacher(g.num_users, g.num_items, feats, None, m.embedding_dim, m.num_layers,
                                       opts.dropout, a_mc=opts.model_cat_rate, init_std=m.init_std,
                                       normalization=self.normalization, extractor="sgfd")
        if not opts.distils:
            return SGFDModel(backbone, None)
        labels = torch.tensor(self.shared.extras["labels"])
        head = SGFDHead({k: x.shape[1] for k, x in feats.items()}, m.embedding_dim, int(labels.max()) + 1,
                        fusion=opts.fusion and opts.w_ce > 0)
        return SGFDModel(backbone, head, labels)

    @classmethod
    def loss_label(cls, cfg) -> str:
        opts = cfg.method.sgfd
        return "BPR + L2" + (" + w_ce CE" if opts.w_ce else "") + (" + w_kd KD" if opts.w_kd else "")

    def loss(self, model, batch):
        opts = self.cfg.method.sgfd
        out = model(batch)
        sgfd: SGFDModel = self.module  # unwrapped (the forward above went through DDP)
        backbone = sgfd.backbone
        if isinstance(out, tuple):  # LightGCN-M
            emb, ego = out
            extra = 0.0
        else:  # PromptMM backbone: every modality output must reach the loss under DDP
            emb, ego = out.emb, out.ego
            extra = 0.0 * sum(f.sum() for f in out.modal.values())
        bpr = bpr_loss(*triplet(emb, batch))
        total = bpr + self.cfg.train.reg_weight * l2_penalty(*triplet(ego, batch)) + extra
        parts = {"bpr": bpr.item()}
        if sgfd.head is not None:
            items = torch.unique(batch.seeds[batch.pos_pos]) - backbone.num_users
            raw = {m: backbone.features(m)[items] for m in sgfd.head.modalities}
            teacher = sgfd.head.teacher_features(raw)
            labels = sgfd.labels[items]
            if opts.w_ce:
                ce = sgfd.head.ce_loss(teacher, labels)
                total = total + opts.w_ce * ce
                parts["ce"] = ce.item()
            if opts.w_kd:
                extract = student_extractors(backbone)
                student = {m: extract[m](x) for m, x in raw.items()}
                kd = sgfd.head.kd_loss(teacher, student, opts.temperature)
                total = total + opts.w_kd * kd
                parts["kd"] = kd.item()
        return total, parts

    def ranking_module(self) -> nn.Module:
        return self.module.backbone  # served: the backbone with the student extractors only
