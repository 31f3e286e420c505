"""What a training stage optimises. The worker loop (:mod:`raymm.train.worker`) is the same for
every stage; a task supplies the module, the per-batch loss, the embeddings to rank with, and what
to save as the best model.

- ``lightgcn``: LightGCN alone with BPR (the no-distillation baseline).
- ``teacher``: PromptMM stage 1, teacher + soft prompt.
- ``distill``: PromptMM stage 2, the LightGCN student distilled from the frozen teacher; the prompt
  keeps learning from the student's loss (paper) or is frozen (parity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from raymm.config import Config
from raymm.graph import EvalSplit, TrainGraph
from raymm.kd import embedding_kd, listwise_kd, pairwise_kd, parity_listwise_kd, parity_pairwise_kd
from raymm.losses import bpr_loss, l2_penalty
from raymm.models.lightgcn import LightGCN
from raymm.models.prompt import SoftPrompt
from raymm.models.promptmm import PromptMMTeacher, TeacherOutput
from raymm.sampling import Batch, NegativeSampler, make_batch


@dataclass
class SharedData:
    """Built once by the driver and put in the object store; every worker on a node reads the
    same copy (numpy arrays are zero-copy from shared memory)."""

    graph: TrainGraph
    val: EvalSplit
    test: EvalSplit | None
    features: dict[str, np.ndarray] | None = None  # modality -> (I, d_m)
    hard_tokens: tuple[np.ndarray, np.ndarray] | None = None  # (H_u, H_i)
    teacher: dict | None = None  # saved teacher payload, for stage 2


def normalization(cfg: Config) -> str:
    return "left" if cfg.parity else "symmetric"


def full_adjacency(graph: TrainGraph, cfg: Config, device) -> torch.Tensor:
    """The full-graph normalised adjacency the config trains with (layer-wise inference)."""
    return graph.normalized_adjacency(device, normalization(cfg))


def build_teacher(cfg: Config, shared: SharedData) -> PromptMMTeacher:
    g = shared.graph
    prompt = None
    if cfg.prompt.enabled:
        h_user, h_item = shared.hard_tokens
        prompt = SoftPrompt(torch.from_numpy(h_user.copy()), torch.from_numpy(h_item.copy()),
                            cfg.model.embedding_dim, cfg.prompt.dropout)
    feats = {m: torch.from_numpy(np.array(x)) for m, x in shared.features.items()}
    return PromptMMTeacher(g.num_users, g.num_items, feats, prompt, cfg.model.embedding_dim, cfg.teacher.num_layers,
                           cfg.teacher.dropout, cfg.teacher.model_cat_rate, cfg.teacher.soft_token_rate,
                           cfg.teacher.feat_soft_token_rate, cfg.model.init_std, cfg.prompt.summary_every,
                           normalization(cfg))


def _triplet(x: torch.Tensor, b: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return x[b.user_pos], x[b.pos_pos], x[b.neg_pos]


class Task:
    """Base: LightGCN trained with BPR."""

    name = "lightgcn"
    list_negatives = 0

    def __init__(self, cfg: Config, shared: SharedData):
        self.cfg, self.shared, self.graph = cfg, shared, shared.graph
        self.module = self.build()

    def build(self) -> nn.Module:
        return LightGCN(self.graph.num_users, self.graph.num_items, self.cfg.model.embedding_dim,
                        self.cfg.model.num_layers, self.cfg.model.init_std, normalization(self.cfg))

    def optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.cfg.train.lr)

    def on_fresh_start(self, device) -> None:
        """Called once before the first epoch of a run that is not resumed."""

    def make_batch(self, users: np.ndarray, pos: np.ndarray, negatives: NegativeSampler, sampler) -> Batch:
        neg = negatives.sample(users, 1)
        lists = None
        if self.list_negatives:
            if self.cfg.parity:  # public code: uniform in [0, max positive id of the batch], unchecked
                lists = negatives.rng.integers(0, pos.max() + 1, (len(users), self.list_negatives))
            else:
                lists = negatives.sample(users, self.list_negatives)
        return make_batch(users, pos, neg, self.graph.num_users, sampler, lists)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        emb, ego = model(batch)
        bpr = bpr_loss(*_triplet(emb, batch))
        reg = l2_penalty(*_triplet(ego, batch))
        return bpr + self.cfg.train.reg_weight * reg, {"bpr": bpr.item()}

    def ranking_module(self) -> nn.Module:
        """The module whose ``full_embeddings(adj)`` ranks items."""
        return self.module

    def payload(self) -> dict:
        """What is saved as the best model."""
        m = self.ranking_module()
        return {"kind": "lightgcn", "hparams": m.hparams(), "state_dict": _cpu(m.state_dict())}


class TeacherTask(Task):
    """PromptMM stage 1: L_T = BPR(e^T) + lambda_reg ||E_batch||^2 + lambda_p BPR(P_u, P_i)
    + lambda_fm sum_m BPR(f^m) + lambda_feat sum_m ||f^m_batch||^2 (spec "Stage 1", step 7)."""

    name = "teacher"

    def build(self) -> nn.Module:
        return build_teacher(self.cfg, self.shared)

    def optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.cfg.teacher.lr, weight_decay=self.cfg.teacher.weight_decay)

    def loss(self, model, batch):
        t = self.cfg.teacher
        out: TeacherOutput = model(batch)
        bpr = bpr_loss(*_triplet(out.emb, batch))
        total = bpr + t.reg_weight * l2_penalty(*_triplet(out.ego, batch))
        parts = {"bpr": bpr.item()}
        if out.prompt is not None and t.prompt_weight:
            prompt_bpr = bpr_loss(*_triplet(out.prompt, batch))
            total = total + t.prompt_weight * prompt_bpr
            parts["prompt_bpr"] = prompt_bpr.item()
        for m, f in out.modal.items():
            fm = bpr_loss(*_triplet(f, batch))
            total = total + t.feat_mf_weight * fm + t.feat_reg_weight * l2_penalty(*_triplet(f, batch))
            parts[f"bpr_{m}"] = fm.item()
        return total, parts

    def payload(self) -> dict:
        return {"kind": "promptmm_teacher", "hparams": self.module.hparams(), "state_dict": _cpu(self.module.state_dict()),
                "config": self.cfg.model_dump()}


class Distiller(nn.Module):
    """Stage-2 container: the student and the frozen teacher (whose prompt may still learn).

    ``forward`` returns the student's seed embeddings and the teacher's outputs at the same seeds;
    gradients reach the student and the prompt, never the teacher's own weights.
    """

    def __init__(self, student: LightGCN, teacher: PromptMMTeacher, prompt_trainable: bool, teacher_dropout: bool):
        super().__init__()
        self.student, self.teacher = student, teacher
        self.teacher_dropout = teacher_dropout
        for name, p in teacher.named_parameters():
            p.requires_grad_(prompt_trainable and name.startswith("prompt."))
        self.prompt_trainable = prompt_trainable and teacher.prompt is not None

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        # The teacher produces targets in eval mode (dropout off); parity mode keeps it in train mode.
        self.teacher.train(mode and self.teacher_dropout)
        return self

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, TeacherOutput]:
        emb, ego = self.student(batch)
        with torch.set_grad_enabled(self.prompt_trainable and torch.is_grad_enabled()):
            out = self.teacher(batch)
        return emb, ego, out


class DistillTask(Task):
    """PromptMM stage 2: L_S = BPR(e^S) + reg + lambda_pair L_pair + lambda_list L_list
    + lambda_emb L_emb (spec "Stage 2"; losses in :mod:`raymm.kd`)."""

    name = "student"

    def __init__(self, cfg, shared):
        self.list_negatives = cfg.distill.list_negatives if cfg.distill.list_weight else 0
        super().__init__(cfg, shared)

    def build(self) -> nn.Module:
        teacher = PromptMMTeacher.from_payload(self.shared.teacher, self.shared.features)
        student = super().build()
        prompt_trainable = self.cfg.distill.prompt_trainable and not self.cfg.parity
        return Distiller(student, teacher, prompt_trainable, teacher_dropout=self.cfg.parity)

    def optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in params if p.requires_grad], lr=self.cfg.train.lr)

    def on_fresh_start(self, device) -> None:
        if self.cfg.distill.init_from_teacher or self.cfg.parity:
            self.module.teacher.eval()
            with torch.no_grad():
                emb, _ = self.module.teacher.full(full_adjacency(self.graph, self.cfg, device))
                self.module.student.embedding.weight.copy_(emb)

    def loss(self, model, batch):
        d = self.cfg.distill
        emb, ego, t = model(batch)
        u, p, n = _triplet(emb, batch)
        bpr = bpr_loss(u, p, n)
        total = bpr + self.cfg.train.reg_weight * l2_penalty(*_triplet(ego, batch))
        parts = {"bpr": bpr.item()}
        tu, tp, tn = _triplet(t.emb, batch)
        if d.pair_weight:
            t_diff = (tu.unsqueeze(1) * (tp.unsqueeze(1) - tn)).sum(-1)  # (B, N)
            s_diff = (u.unsqueeze(1) * (p.unsqueeze(1) - n)).sum(-1)
            pair = parity_pairwise_kd(t_diff, s_diff) if self.cfg.parity else pairwise_kd(t_diff, s_diff, d.tau_pair)
            total = total + d.pair_weight * pair
            parts["kd_pair"] = pair.item()
        if d.list_weight:
            cols = torch.cat([batch.pos_pos.unsqueeze(1), batch.list_pos], dim=1)  # (B, K+1), target first
            s_logits = (u.unsqueeze(1) * emb[cols]).sum(-1)
            t_logits = {m: (f[batch.user_pos].unsqueeze(1) * f[cols]).sum(-1) for m, f in t.modal.items()}
            lst = (parity_listwise_kd(t_logits, s_logits) if self.cfg.parity
                   else listwise_kd(t_logits, s_logits, d.tau_list, d.reweight))
            total = total + d.list_weight * lst
            parts["kd_list"] = lst.item()
        if d.emb_weight:
            if self.cfg.parity:  # public code: item embeddings only
                items = batch.seeds >= self.graph.num_users
                e = embedding_kd({m: f[items] for m, f in t.modal.items()}, emb[items], d.sce_gamma)
            else:
                e = embedding_kd(t.modal, emb, d.sce_gamma)
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
        if self.module.teacher.prompt is not None:
            out["prompt_state_dict"] = _cpu(self.module.teacher.prompt.state_dict())
        return out


TASKS = {"lightgcn": Task, "teacher": TeacherTask, "student": DistillTask}


def _cpu(state: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in state.items()}
