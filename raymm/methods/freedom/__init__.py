"""``method.name: freedom``: FREEDOM (Zhou and Shen, "A Tale of Two Graphs: Freezing and Denoising
Graph Structures for Multimodal Recommendation", ACM MM 2023) alone: frozen item-item kNN graphs
from each modality's features plus degree-sensitive pruning of the user-item graph
(:mod:`raymm.models.freedom`). The served model is FREEDOM itself; as a teacher for distillation
see ``method.promptmm.teacher.backbone: freedom``."""

from __future__ import annotations

from raymm.errors import InputError
from raymm.methods.base import Method, SharedData, Stage
from raymm.methods.freedom.config import FreedomConfig
from raymm.methods.freedom.tasks import FreedomTask
from raymm.models.freedom import item_knn_graph


def check_modality_weights(weights: dict[str, float] | None, modalities, key: str, uri: str) -> None:
    """Weights must name exactly the dataset's modalities, be >= 0 and not all 0."""
    if weights is None:
        return
    if set(weights) != set(modalities):
        raise InputError(f"{key}: names {sorted(weights)}, dataset {uri} has modalities {sorted(modalities)}")
    if any(w < 0 for w in weights.values()) or not sum(weights.values()) > 0:
        raise InputError(f"{key}: weights must be >= 0 and not all 0, got {weights}")


def precompute_item_graph(opts, shared: SharedData) -> None:
    """FREEDOM's frozen item-item kNN graph, once on the driver (workers read it from the object store)."""
    shared.extras["item_graph"] = item_knn_graph(shared.features, opts.knn_k, opts.modality_weights)


class FreedomMethod(Method):
    name = "freedom"
    config_cls = FreedomConfig
    needs_features = True

    def check(self, cfg, dataset) -> None:
        super().check(cfg, dataset)
        check_modality_weights(cfg.method.freedom.modality_weights, dataset.manifest.modalities,
                               "method.freedom.modality_weights", dataset.uri)

    def precompute(self, cfg, dataset, shared: SharedData) -> None:
        super().precompute(cfg, dataset, shared)
        precompute_item_graph(cfg.method.freedom, shared)

    def stages(self, cfg):
        return [Stage("freedom", FreedomTask, cfg.train.epochs, cfg.train.patience)]


METHOD = FreedomMethod()
