"""LATTICE's training task (Zhang et al., ACM MM 2021; :mod:`raymm.models.lattice`)."""

from __future__ import annotations

from torch import nn

from raymm.losses import bpr_loss, l2_penalty
from raymm.methods.base import Task, triplet
from raymm.models.lattice import Lattice


def build_lattice(cfg, shared, opts, dim: int, num_layers: int) -> Lattice:
    g = shared.graph
    return Lattice(g.num_users, g.num_items, shared.features, dim, num_layers, opts.item_layers, opts.knn_k,
                   opts.lambda_coeff, cfg.model.init_std)


def lattice_loss(model: Lattice, out, batch, reg_weight: float):
    """``BPR(e) + reg_weight ||E_batch||^2`` (LATTICE's objective (7)); ``model``'s graph weights
    enter as ``0 x`` at the steps that do not build its graph, so that DDP sees every gradient."""
    bpr = bpr_loss(*triplet(out.emb, batch))
    total = bpr + reg_weight * l2_penalty(*triplet(out.ego, batch))
    total = total + 0.0 * sum(p.sum() for p in model.graph_parameters())
    return total, {"bpr": bpr.item()}


class LatticeTask(Task):
    """``L = BPR(e) + train.reg_weight ||E_batch||^2``; the learned item graph is rebuilt, with
    gradients, at each epoch's first step (:func:`lattice_loss`)."""

    def build(self) -> nn.Module:
        m = self.cfg.model
        return build_lattice(self.cfg, self.shared, self.cfg.method.lattice, m.embedding_dim, m.num_layers)

    def start_epoch(self, seed: int, epoch: int = 0) -> None:
        super().start_epoch(seed, epoch)
        self.module.rebuild = True

    def loss(self, model, batch):
        return lattice_loss(self.module, model(batch), batch, self.cfg.train.reg_weight)
