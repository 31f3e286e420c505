"""``method.name: sgfd``: SGFD (Liu et al., ACM MM 2023, https://arxiv.org/abs/2308.03113; spec
``../shared/docs/methods.md``, "SGFD"), a plug-in that replaces a backbone's modality feature
extractor with a one-linear student distilled, in one joint stage, from deep teacher extractors
guided by item semantic labels.

The worked example of a method (see the README, "Adding a method"): ``config.py`` is its
``method.sgfd.*`` section, ``model.py`` its modules and losses, ``tasks.py`` its one stage, and this
file what it precomputes (the labels) and its stage list.
"""

from __future__ import annotations

import numpy as np

from raymm.errors import InputError
from raymm.kmeans import kmeans
from raymm.methods.base import Method, SharedData, Stage
from raymm.methods.sgfd.config import SGFDConfig
from raymm.methods.sgfd.tasks import SGFDTask


class SGFD(Method):
    name = "sgfd"
    config_cls = SGFDConfig
    needs_features = True

    def min_fanout_layers(self, cfg) -> int:
        extra = 2 if cfg.method.sgfd.backbone == "promptmm" else 0  # its modality GNN: two hops
        return max(cfg.model.num_layers, extra)

    def check(self, cfg, dataset) -> None:
        super().check(cfg, dataset)
        opts = cfg.method.sgfd
        if opts.distils and opts.labels == "category" and "category" not in dataset.manifest.item_columns:
            raise InputError(f"method.sgfd.labels is 'category' but dataset {dataset.uri} has no item categories "
                             "(items/part-*.parquet, column category); set method.sgfd.labels=kmeans:<K> to cluster "
                             "the item features instead")
        if opts.labels.startswith("kmeans:") and int(opts.labels.split(":")[1]) > dataset.num_items:
            raise InputError(f"method.sgfd.labels={opts.labels}: more clusters than the {dataset.num_items} items")

    def precompute(self, cfg, dataset, shared: SharedData) -> None:
        super().precompute(cfg, dataset, shared)
        opts = cfg.method.sgfd
        if opts.distils:
            shared.extras["labels"] = item_labels(opts, dataset, shared.features)

    def stages(self, cfg) -> list[Stage]:
        return [Stage("sgfd", SGFDTask, cfg.train.epochs, cfg.train.patience)]


def item_labels(opts: SGFDConfig, dataset, features: dict[str, np.ndarray]) -> np.ndarray:
    """(I,) int64 dense labels: the dataset's categories, or k-means over the concatenated,
    per-modality standardised features (``kmeans:<K>``, seeded by ``method.sgfd.seed``)."""
    if opts.labels == "category":
        raw = dataset.read_items()["category"]
    else:
        k = int(opts.labels.split(":")[1])
        parts = [(x - x.mean(0)) / (x.std(0) + 1e-8) / np.sqrt(x.shape[1]) for _, x in sorted(features.items())]
        raw = kmeans(np.concatenate(parts, axis=1), k, opts.kmeans_iters, opts.seed)
    _, dense = np.unique(raw, return_inverse=True)
    return dense.astype(np.int64)


METHOD = SGFD()
