"""``method.name: lightgcn``: the ID-only LightGCN alone with BPR, the no-distillation baseline."""

from __future__ import annotations

from raymm.methods.base import Method, Stage, Task


class LightGCNMethod(Method):
    name = "lightgcn"
    lazy_adam = True

    def stages(self, cfg):
        return [Stage("lightgcn", Task, cfg.train.epochs, cfg.train.patience)]


METHOD = LightGCNMethod()
