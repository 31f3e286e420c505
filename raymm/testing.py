"""Fault injection for tests of resumption (importable by Ray workers, unlike test modules)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class FailOnce:
    """An epoch callback that raises once, at ``epoch``, the first time it gets there.

    ``marker`` is a file created when the failure fires, so a relaunched run gets past it.
    Optionally wraps another callback.
    """

    marker: str
    epoch: int
    inner: object = None

    def __call__(self, metrics: dict, epoch: int) -> None:
        if self.inner is not None:
            self.inner(metrics, epoch)
        if epoch == self.epoch and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            raise RuntimeError(f"injected failure at epoch {epoch}")


@dataclass
class RecordEnv:
    """An epoch callback that writes the worker's value of environment variable ``name`` (or
    ``<unset>``) to the file ``path``."""

    name: str
    path: str

    def __call__(self, metrics: dict, epoch: int) -> None:
        with open(self.path, "w") as f:
            f.write(os.environ.get(self.name, "<unset>"))


def train_single_stage(cfg, dataset, storage: str, run_name: str, **kwargs):
    """One Ray Train run of a single-stage method (LightGCN, SGFD): the training loop alone, without
    the job around it (for tests of resumption and faults)."""
    from raymm.methods.registry import get_method
    from raymm.train.run import build_shared, run_training

    (stage,) = get_method(cfg.method.name).stages(cfg)
    return run_training(cfg, dataset, storage, run_name, stage, build_shared(dataset, cfg), **kwargs)
