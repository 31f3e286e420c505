"""PromptMM's two stages (Wei et al., WWW 2024; spec ``../shared/docs/promptmm.md``).

- :class:`TeacherTask`: stage 1, teacher + soft prompt.
- :class:`DistillTask`: stage 2, the LightGCN student distilled from the frozen teacher; the prompt
  keeps learning from the student's loss (paper) or is frozen (parity).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raymm.kd import embedding_kd, listwise_kd, pairwise_kd, parity_listwise_kd, parity_pairwise_kd
from raymm.losses import bpr_loss, l2_penalty
from raymm.methods.freedom.tasks import build_freedom, freedom_loss, prune_neighbourhoods
from raymm.methods.lattice.tasks import build_lattice, lattice_loss
from raymm.methods.base import SharedData, Task, triplet
from raymm.models.propagation import row_dots, rows
from raymm.models.lightgcn import LightGCN
from raymm.models.prompt import SoftPrompt
from raymm.models.promptmm import PromptMMTeacher, TeacherOutput
from raymm.models.registry import cpu_state, from_payload
from raymm.sampling import Batch, NegativeSampler, make_batch


def teacher_dim(cfg) -> int:
    """d_T: ``method.promptmm.teacher.embedding_dim``, else the student's ``model.embedding_dim``."""
    return cfg.method.promptmm.teacher.embedding_dim or cfg.model.embedding_dim


def build_teacher(cfg, shared: SharedData) -> nn.Module:
    """The stage-1 teacher of ``method.promptmm.teacher.backbone``: PromptMM's own, FREEDOM or LATTICE."""
    opts = cfg.method.promptmm
    if opts.teacher.backbone == "freedom":
        return build_freedom(cfg, shared, opts.teacher.freedom, teacher_dim(cfg), opts.teacher.num_layers)
    if opts.teacher.backbone == "lattice":
        return build_lattice(cfg, shared, opts.teacher.lattice, teacher_dim(cfg), opts.teacher.num_layers)
    g = shared.graph
    prompt = None
    if opts.prompt.enabled:
        h_user, h_item = shared.extras["hard_tokens"]
        prompt = SoftPrompt(torch.from_numpy(h_user.copy()), torch.from_numpy(h_item.copy()),
                            teacher_dim(cfg), opts.prompt.dropout)
    t = opts.teacher
    return PromptMMTeacher(g.num_users, g.num_items, shared.features, prompt, teacher_dim(cfg), t.num_layers,
                           t.dropout, t.model_cat_rate, t.soft_token_rate, t.feat_soft_token_rate, cfg.model.init_std,
                           opts.prompt.summary_every, "left" if opts.parity else "symmetric")


def reduce_to(emb: torch.Tensor, dim: int) -> torch.Tensor:
    """(N, d_T) teacher embeddings as (N, dim) student initial embeddings: unchanged when dim = d_T,
    else their projection on the top ``dim`` right singular vectors (``E V_k``, truncated SVD, not
    centred), whose dot products are the best rank-``dim`` approximation of the teacher's."""
    if emb.shape[1] == dim:
        return emb
    _, _, vh = torch.linalg.svd(emb, full_matrices=False)
    return emb @ vh[:dim].T


class _PromptMMTask(Task):
    @property
    def normalization(self) -> str:
        return "left" if self.cfg.method.promptmm.parity else "symmetric"

    def make_batch(self, users: np.ndarray, pos: np.ndarray, negatives: NegativeSampler, sampler) -> Batch:
        if self.list_negatives and self.cfg.method.promptmm.parity:
            # public code: list negatives uniform in [0, max positive id of the batch], unchecked
            neg = negatives.sample(users, 1)
            lists = negatives.rng.integers(0, pos.max() + 1, (len(users), self.list_negatives))
            return make_batch(users, pos, neg, self.graph.num_users, sampler, lists)
        return super().make_batch(users, pos, negatives, sampler)


class TeacherTask(_PromptMMTask):
    """PromptMM stage 1: L_T = BPR(e^T) + lambda_reg ||E_batch||^2 + lambda_p BPR(P_u, P_i)
    + lambda_fm sum_m BPR(f^m) + lambda_feat sum_m ||f^m_batch||^2 (spec "Stage 1", step 7).

    With ``teacher.backbone: freedom``, FREEDOM's objective instead (:class:`~raymm.methods.freedom.
    tasks.FreedomTask`: L_T = BPR(e) + lambda_reg ||E_batch||^2 + lambda sum_m BPR(f^m), lambda =
    ``teacher.freedom.modal_weight``) over a user-item graph pruned anew each epoch; with
    ``lattice``, LATTICE's (L_T = BPR(e) + lambda_reg ||E_batch||^2, its learned item graph rebuilt
    each epoch)."""

    def build(self) -> nn.Module:
        return build_teacher(self.cfg, self.shared)

    def start_epoch(self, seed: int, epoch: int = 0) -> None:
        super().start_epoch(seed, epoch)
        t = self.cfg.method.promptmm.teacher
        if t.backbone == "freedom":
            prune_neighbourhoods(self, t.freedom.edge_drop, epoch)
        if t.backbone == "lattice":
            self.module.rebuild = True  # its learned item graph, with gradients at the epoch's first step

    def optimizer(self, params) -> torch.optim.Optimizer:
        t = self.cfg.method.promptmm.teacher
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)

    @classmethod
    def loss_label(cls, cfg) -> str:
        if cfg.method.promptmm.teacher.backbone == "freedom":
            return "FREEDOM: BPR + L2 + modality BPR"
        if cfg.method.promptmm.teacher.backbone == "lattice":
            return "LATTICE: BPR + L2"
        return "BPR + L2 + prompt BPR + modality BPR"

    def loss(self, model, batch):
        t = self.cfg.method.promptmm.teacher
        out: TeacherOutput = model(batch).own(batch)  # full propagation: the batch's rows, gathered once
        batch = batch.compact()
        if t.backbone == "freedom":
            return freedom_loss(out, batch, t.reg_weight, t.freedom.modal_weight)
        if t.backbone == "lattice":
            return lattice_loss(self.module, out, batch, t.reg_weight)
        bpr = bpr_loss(*triplet(out.emb, batch))
        total = bpr + t.reg_weight * l2_penalty(*triplet(out.ego, batch))
        parts = {"bpr": bpr.item()}
        if out.prompt is not None and t.prompt_weight:
            prompt_bpr = bpr_loss(*triplet(out.prompt, batch))
            total = total + t.prompt_weight * prompt_bpr
            parts["prompt_bpr"] = prompt_bpr.item()
        for m, f in out.modal.items():
            fm = bpr_loss(*triplet(f, batch))
            total = total + t.feat_mf_weight * fm + t.feat_reg_weight * l2_penalty(*triplet(f, batch))
            parts[f"bpr_{m}"] = fm.item()
        return total, parts


class Distiller(nn.Module):
    """Stage-2 container: the student and the frozen teacher (whose prompt may still learn).

    ``forward`` returns the student's seed embeddings and the teacher's outputs at the same seeds;
    gradients reach the student and the prompt, never the teacher's own weights.

    A student smaller than the teacher (d_S < d_T) gets ``project``, a learned linear map
    W: R^{d_S} -> R^{d_T} (no bias) that the embedding KD compares through (``L_emb = sum_m
    SCE(f^m, W e^S)``); the pairwise and list-wise terms compare scores, which need no map. W is
    trained with the student and is not part of the served model.

    A frozen teacher (no trainable prompt, no teacher dropout: every FREEDOM or LATTICE teacher, and
    PromptMM's with ``distill.prompt_trainable: false``) gives the same outputs at every step, so
    :class:`DistillTask` computes them once over the full training graph (``targets``: (N, d_T)
    e^T and m -> (N, d_T) f^m) and ``forward`` looks the seeds' rows up: exact where a teacher
    forward on the sampled blocks would estimate them, and no teacher work per step.
    """

    def __init__(self, student: LightGCN, teacher: PromptMMTeacher, prompt_trainable: bool, teacher_dropout: bool,
                 project: bool = False):
        super().__init__()
        self.student, self.teacher = student, teacher
        self.project = nn.Linear(student.dim, teacher.dim, bias=False) if project else None
        self.teacher_dropout = teacher_dropout
        for name, p in teacher.named_parameters():
            p.requires_grad_(prompt_trainable and name.startswith("prompt."))
        self.prompt_trainable = prompt_trainable and teacher.prompt is not None
        self.targets: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None  # a frozen teacher's, all nodes

    @property
    def frozen(self) -> bool:
        """Whether the teacher's outputs stay fixed for the whole stage (they are then ``targets``)."""
        return not self.prompt_trainable and not self.teacher_dropout

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        # The teacher produces targets in eval mode (dropout off); parity mode keeps it in train mode.
        self.teacher.train(mode and self.teacher_dropout)
        return self

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, TeacherOutput]:
        emb, ego = self.student(batch)
        if self.targets is not None:
            t_emb, t_modal = self.targets
            return emb, ego, TeacherOutput(t_emb[batch.seeds], None, {m: f[batch.seeds] for m, f in t_modal.items()},
                                           None)
        with torch.set_grad_enabled(self.prompt_trainable and torch.is_grad_enabled()):
            out = self.teacher(batch)
        return emb, ego, out


class DistillTask(_PromptMMTask):
    """PromptMM stage 2: L_S = BPR(e^S) + reg + lambda_pair L_pair + lambda_list L_list
    + lambda_emb L_emb (spec "Stage 2"; losses in :mod:`raymm.kd`)."""

    def __init__(self, cfg, shared):
        d = cfg.method.promptmm.distill
        self.list_negatives = d.list_negatives if d.list_weight else 0
        super().__init__(cfg, shared)

    def build(self) -> nn.Module:
        opts = self.cfg.method.promptmm
        teacher = from_payload(self.shared.extras["teacher"], self.shared.features, "teacher")
        student = super().build()
        prompt_trainable = opts.distill.prompt_trainable and not opts.parity
        project = student.dim != teacher.dim and opts.distill.emb_weight > 0
        return Distiller(student, teacher, prompt_trainable, teacher_dropout=opts.parity, project=project)

    @classmethod
    def loss_label(cls, cfg) -> str:
        return "BPR + L2 + KD (pairwise, list-wise, embedding)"

    def on_fresh_start(self, device) -> None:
        opts = self.cfg.method.promptmm
        if opts.distill.init_from_teacher or opts.parity:
            emb, _ = self.teacher_full(device)
            with torch.no_grad():
                self.module.student.embedding.weight.copy_(reduce_to(emb, self.module.student.dim))

    @torch.no_grad()
    def teacher_full(self, device) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The teacher's outputs at all N = U + I nodes, full-graph and in eval mode: ((N, d_T) e^T,
        m -> (N, d_T) f^m); the student's initialisation and a frozen teacher's targets."""
        teacher = self.module.teacher
        training = teacher.training
        teacher.eval()
        try:
            return teacher.full(self.graph.normalized_adjacency(device, self.normalization))
        finally:
            teacher.train(training)

    def loss(self, model, batch):
        parity = self.cfg.method.promptmm.parity
        d = self.cfg.method.promptmm.distill
        if self.module.frozen and self.module.targets is None:  # once per worker (and per restart)
            self.module.targets = self.teacher_full(batch.seeds.device)
        emb, ego, t = model(batch)
        emb, ego, t = batch.own(emb), batch.own(ego), t.own(batch)  # full propagation: gathered once
        batch = batch.compact()
        u, p, n = triplet(emb, batch)
        bpr = bpr_loss(u, p, n)
        total = bpr + self.cfg.train.reg_weight * l2_penalty(*triplet(ego, batch))
        parts = {"bpr": bpr.item()}
        tu, tp, tn = triplet(t.emb, batch)
        if d.pair_weight:
            t_diff = (tu.unsqueeze(1) * (tp.unsqueeze(1) - tn)).sum(-1)  # (B, N)
            s_diff = (u.unsqueeze(1) * (p.unsqueeze(1) - n)).sum(-1)
            pair = parity_pairwise_kd(t_diff, s_diff) if parity else pairwise_kd(t_diff, s_diff, d.tau_pair)
            total = total + d.pair_weight * pair
            parts["kd_pair"] = pair.item()
        if d.list_weight:
            cols = torch.cat([batch.pos_pos.unsqueeze(1), batch.list_pos], dim=1)  # (B, K+1), target first
            s_logits = row_dots(emb, u, cols)
            t_logits = {m: row_dots(f, rows(f, batch.user_pos), cols) for m, f in t.modal.items()}
            lst = (parity_listwise_kd(t_logits, s_logits) if parity
                   else listwise_kd(t_logits, s_logits, d.tau_list, d.reweight))
            total = total + d.list_weight * lst
            parts["kd_list"] = lst.item()
        if d.emb_weight:
            if parity:  # public code: item embeddings only
                items = batch.seeds >= self.graph.num_users
                e = embedding_kd({m: f[items] for m, f in t.modal.items()}, emb[items], d.sce_gamma)
            else:  # the batch's users and items
                project = self.module.project
                e = embedding_kd(t.modal, emb if project is None else project(emb), d.sce_gamma)
            total = total + d.emb_weight * e
            parts["kd_emb"] = e.item()
        # Under DDP every teacher output that the trainable prompt feeds must reach the loss, or DDP
        # waits for gradients that never come: a KD term switched off (an ablation) passes as 0 x.
        total = total + 0.0 * (t.emb.sum() + sum(f.sum() for f in t.modal.values()))
        return total, parts

    def ranking_module(self) -> nn.Module:
        return self.module.student

    def payload(self) -> dict:
        out = super().payload()
        if self.module.teacher.prompt is not None:  # the prompt as stage 2 left it
            out["prompt_state_dict"] = cpu_state(self.module.teacher.prompt.state_dict())
        return out
