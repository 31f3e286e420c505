"""``method.name: lattice``: LATTICE (Zhang et al., "Mining Latent Structures for Multimedia
Recommendation", ACM MM 2021) alone: item-item graphs learned from projected modality features,
mixed with the raw features' kNN graphs, convolved over the item ID embeddings on top of LightGCN
(:mod:`raymm.models.lattice`). As a teacher for distillation see
``method.promptmm.teacher.backbone: lattice``."""

from __future__ import annotations

from raymm.methods.base import Method, Stage
from raymm.methods.lattice.config import LatticeConfig
from raymm.methods.lattice.tasks import LatticeTask


class LatticeMethod(Method):
    name = "lattice"
    config_cls = LatticeConfig
    needs_features = True

    def stages(self, cfg):
        return [Stage("lattice", LatticeTask, cfg.train.epochs, cfg.train.patience)]


METHOD = LatticeMethod()
