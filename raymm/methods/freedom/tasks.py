"""FREEDOM's training task (Zhou and Shen, ACM MM 2023; :mod:`raymm.models.freedom`), and the
per-epoch pruned neighbourhoods it shares with PromptMM's FREEDOM teacher."""

from __future__ import annotations

import numpy as np
from torch import nn

from raymm.losses import bpr_loss, l2_penalty
from raymm.methods.base import Task, triplet
from raymm.models.freedom import Freedom, degree_sensitive_prune
from raymm.sampling import choose, neighbourhoods


def build_freedom(cfg, shared, opts, dim: int, num_layers: int) -> Freedom:
    """A FREEDOM model over ``shared`` (its item graph precomputed in ``shared.extras["item_graph"]``)."""
    g = shared.graph
    return Freedom(g.num_users, g.num_items, shared.features, shared.extras["item_graph"], dim, num_layers,
                   opts.item_layers, opts.knn_k, opts.modality_weights, cfg.model.init_std)


def prune_neighbourhoods(task: Task, drop: float, epoch: int) -> None:
    """Point ``task.neighbours`` at this epoch's degree-sensitively pruned user-item graph, in the
    propagation mode chosen for the whole graph. The draw depends on ``train.seed`` and the epoch
    only, so every worker propagates over the same graph; evaluation keeps ``task.adj`` (all edges)."""
    t = task.cfg.train
    mode = choose(task.graph, t.fanouts, t.batch_size, t.propagation)
    pruned = degree_sensitive_prune(task.graph, drop, np.random.default_rng([t.seed, epoch, 4099]))
    task.neighbours = neighbourhoods(pruned, t.fanouts, t.batch_size, mode, task.normalization, task.device)


class FreedomTask(Task):
    """``L = BPR(e) + train.reg_weight ||E_batch||^2 + lambda sum_m BPR(e_u, W_m x^m + b_m)``
    (FREEDOM's objective (6), plus raymm's usual L2 on the batch's ID embeddings; :func:`freedom_loss`)."""

    def build(self) -> nn.Module:
        m = self.cfg.model
        return build_freedom(self.cfg, self.shared, self.cfg.method.freedom, m.embedding_dim, m.num_layers)

    def start_epoch(self, seed: int, epoch: int = 0) -> None:
        super().start_epoch(seed, epoch)
        prune_neighbourhoods(self, self.cfg.method.freedom.edge_drop, epoch)

    @classmethod
    def loss_label(cls, cfg) -> str:
        return "BPR + L2 + modality BPR"

    def loss(self, model, batch):
        return freedom_loss(model(batch), batch, self.cfg.train.reg_weight, self.cfg.method.freedom.modal_weight)


def freedom_loss(out, batch, reg_weight: float, modal_weight: float):
    """``BPR(e) + reg_weight ||E_batch||^2 + modal_weight sum_m BPR(f^m)`` of FREEDOM's outputs
    ``out`` (a :class:`~raymm.models.promptmm.TeacherOutput`) on ``batch``; (loss, its parts)."""
    bpr = bpr_loss(*triplet(out.emb, batch))
    total = bpr + reg_weight * l2_penalty(*triplet(out.ego, batch))
    parts = {"bpr": bpr.item()}
    for m, f in out.modal.items():
        term = bpr_loss(*triplet(f, batch))
        total = total + modal_weight * term
        parts[f"bpr_{m}"] = term.item()
    return total, parts
