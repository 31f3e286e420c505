"""``method.name: sasrec``: SASRec alone (Kang and McAuley, ICDM 2018), the sequential family's
no-distillation baseline. One stage; next-item cross-entropy; full-ranking next-item evaluation."""

from __future__ import annotations

from raymm.methods.base import Method, Stage
from raymm.methods.sasrec.config import SASRecConfig
from raymm.methods.sequential import SequentialTask, precompute_sequences
from raymm.models.sasrec import SASRec


class SASRecTask(SequentialTask):
    def build(self):
        o = self.options()
        return SASRec(self.graph.num_items, self.cfg.model.embedding_dim, o.max_len, o.num_blocks, o.num_heads,
                      o.dropout, self.cfg.model.init_std)


class SASRecMethod(Method):
    name = "sasrec"
    family = "sequential"
    config_cls = SASRecConfig

    def options(self, cfg):
        """This method's ``method.<name>`` section."""
        return getattr(cfg.method, self.name)

    def check(self, cfg, dataset) -> None:
        super().check(cfg, dataset)
        heads = self.options(cfg).num_heads
        if cfg.model.embedding_dim % heads:
            from raymm.errors import InputError

            raise InputError(f"method.{self.name}.num_heads={heads} must divide model.embedding_dim="
                             f"{cfg.model.embedding_dim}")

    def min_fanout_layers(self, cfg) -> int:
        return 0  # no neighbourhood sampling

    def precompute(self, cfg, dataset, shared) -> None:
        super().precompute(cfg, dataset, shared)  # features, for the methods that need them
        precompute_sequences(dataset, shared)

    def stages(self, cfg):
        return [Stage("sasrec", SASRecTask, cfg.train.epochs, cfg.train.patience)]


METHOD = SASRecMethod()
