"""``method.name: odmt``: ODMT (Ji et al., ACM MM 2023; spec ``../shared/docs/methods.md``). Branches
(ID and one per modality, any number) over an ID-aware multimodal item transformer teach each other
online; one joint stage; the served model ranks by the mean of the branch scores."""

from __future__ import annotations

import numpy as np

from raymm.errors import InputError
from raymm.methods.base import Stage
from raymm.methods.odmt.config import ODMTConfig
from raymm.methods.odmt.tasks import ODMTTask
from raymm.methods.sasrec import SASRecMethod


def item_popularity(graph) -> np.ndarray:
    """(I,) float32 share of the training interactions held by each item (sums to 1): the in-batch
    logits' debiasing (:func:`raymm.methods.odmt.losses.inclusion_log_prob`)."""
    counts = graph.degree[graph.num_users:].astype(np.float64)
    return (counts / max(counts.sum(), 1.0)).astype(np.float32)


class ODMTMethod(SASRecMethod):
    name = "odmt"
    config_cls = ODMTConfig
    needs_features = True

    def check(self, cfg, dataset) -> None:
        super().check(cfg, dataset)
        if cfg.model.embedding_dim % cfg.method.odmt.item_heads:
            raise InputError(f"method.odmt.item_heads={cfg.method.odmt.item_heads} must divide model.embedding_dim="
                             f"{cfg.model.embedding_dim}")

    def precompute(self, cfg, dataset, shared) -> None:
        super().precompute(cfg, dataset, shared)
        shared.extras["item_pop"] = item_popularity(shared.graph)

    def stages(self, cfg):
        o = cfg.method.odmt
        # The KD weight ramps up over the first ramp_up_epochs: validation is not judged before the
        # objective is fixed (the public code never stops early; it keeps the best validation epoch).
        return [Stage("odmt", ODMTTask, cfg.train.epochs, cfg.train.patience,
                      min_epochs=o.ramp_up_epochs if o.kd_weight else 0)]


METHOD = ODMTMethod()
