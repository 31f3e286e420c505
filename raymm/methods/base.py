"""What a method is: its config section, what it precomputes once on the driver, its stages, and
the tasks its stages train. The worker loop (:mod:`raymm.train.worker`) and the stage orchestrator
(:mod:`raymm.train.stages`) know nothing else about a method.

A method folder ``raymm/methods/<name>/`` holds ``config.py`` (its ``method.<name>.*`` section),
``tasks.py`` (a :class:`Task` per stage) and ``__init__.py`` (its :class:`Method`); one line in
:mod:`raymm.methods.registry` makes it available as ``method.name: <name>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from raymm.evaluation import metric_sums
from raymm.graph import EvalSplit, TrainGraph
from raymm.losses import bpr_loss, l2_penalty
from raymm.models.lightgcn import LightGCN
from raymm.models.registry import to_payload
from raymm.optim import LazyAdam
from raymm.sampling import Batch, NegativeSampler, make_batch, neighbourhoods

if TYPE_CHECKING:
    from raymm.config import Config
    from raymm.data.store import Dataset


@dataclass
class SharedData:
    """Built once by the driver and put in the object store; every worker on a node reads the
    same copy (numpy arrays are zero-copy from shared memory).

    ``extras`` holds what a method precomputes (PromptMM's hard tokens, SGFD's item labels) and
    what one stage hands the next (PromptMM's teacher payload).
    """

    graph: TrainGraph
    val: EvalSplit
    test: EvalSplit | None
    features: dict[str, np.ndarray] | None = None  # modality -> (I, d_m), for methods that read them
    extras: dict[str, Any] = field(default_factory=dict)


def triplet(x: torch.Tensor, b: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(users, positives, negatives) rows of seed-aligned ``x``. ``index_select`` rather than ``x[idx]``:
    its backward is an ``index_add_``, where indexing's is an accumulating ``index_put_`` that is
    slower on the CPU."""
    neg = x.index_select(0, b.neg_pos.reshape(-1)).reshape(*b.neg_pos.shape, *x.shape[1:])
    return x.index_select(0, b.user_pos), x.index_select(0, b.pos_pos), neg


class Task:
    """What one stage optimises; the default is LightGCN with BPR (He et al., SIGIR 2020, eq. 15):
    ``L = BPR(e_u, e_p, e_n) + train.reg_weight * ||E^0_batch||^2``.

    A task supplies the module, the optimiser, the batches (from the streamed training rows), the
    per-batch loss, the evaluation, the module that ranks, and the payload saved as the best model.
    The defaults are the graph family's: sampled neighbourhoods, BPR triplets, and full ranking
    from user and item embeddings (:mod:`raymm.methods.sequential` has the sequential family's).
    """

    list_negatives = 0

    def __init__(self, cfg: "Config", shared: SharedData):
        self.cfg, self.shared, self.graph = cfg, shared, shared.graph
        self.module = self.build()

    @property
    def normalization(self) -> str:
        """Adjacency normalisation of sampling, propagation and inference."""
        return "symmetric"

    def build(self) -> nn.Module:
        m = self.cfg.model
        model = LightGCN(self.graph.num_users, self.graph.num_items, m.embedding_dim, m.num_layers, m.init_std,
                         self.normalization)
        model.embedding.sparse = self.cfg.train.optimizer == "lazy_adam"  # row-sparse gradients for LazyAdam
        return model

    def optimizer(self, params) -> torch.optim.Optimizer:
        """``train.optimizer``: Adam, or :class:`~raymm.optim.LazyAdam` (the rows a batch read)."""
        params = [p for p in params if p.requires_grad]
        if self.cfg.train.optimizer == "lazy_adam":
            return LazyAdam(params, lr=self.cfg.train.lr)
        return torch.optim.Adam(params, lr=self.cfg.train.lr)

    def on_fresh_start(self, device) -> None:
        """Called once before the first epoch of a run that is not resumed."""

    def setup(self, rank: int, world: int, device) -> None:
        """Per-worker state, once before training: samplers and this worker's evaluation shards."""
        self.device = device
        t = self.cfg.train
        self.neighbours = neighbourhoods(self.graph, t.fanouts, t.batch_size, t.propagation, self.normalization,
                                         device)
        self.adj = getattr(self.neighbours, "adj", None)  # full propagation already built it
        if self.adj is None:
            self.adj = self.graph.normalized_adjacency(device, self.normalization)
        self.eval_splits = {"val": self.shared.val.shard(rank, world),
                            "test": self.shared.test.shard(rank, world) if self.shared.test is not None else None}

    def start_epoch(self, seed: int, epoch: int = 0) -> None:
        """Per-epoch state (negatives), seeded per worker and epoch; ``epoch`` counts from 0."""
        self.negatives = NegativeSampler(self.graph, seed=seed)

    def batch_from_rows(self, rows: dict[str, np.ndarray]):
        """A training batch from streamed interaction rows (``user_id``, ``item_id``), on the device."""
        users, pos = rows["user_id"].astype(np.int64), rows["item_id"].astype(np.int64)
        return self.make_batch(users, pos, self.negatives, self.neighbours).to(self.device)

    def has_split(self, which: str) -> bool:
        return self.eval_splits.get(which) is not None

    def eval_sums(self, which: str) -> torch.Tensor:
        """This worker's metric sums on ``val`` or ``test`` (:func:`raymm.evaluation.metric_sums`)."""
        users, items = self.ranking_module().full_embeddings(self.adj)
        return metric_sums(users, items, self.eval_splits[which], self.graph, self.cfg.eval.ks,
                           self.cfg.eval.user_batch_size)

    def make_batch(self, users: np.ndarray, pos: np.ndarray, negatives: NegativeSampler, sampler) -> Batch:
        neg = negatives.sample(users, 1)
        lists = negatives.sample(users, self.list_negatives) if self.list_negatives else None
        return make_batch(users, pos, neg, self.graph.num_users, sampler, lists)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        emb, ego = model(batch)
        emb, ego = batch.own(emb), batch.own(ego)  # full propagation: the batch's rows, gathered once
        batch = batch.compact()
        bpr = bpr_loss(*triplet(emb, batch))
        reg = l2_penalty(*triplet(ego, batch))
        return bpr + self.cfg.train.reg_weight * reg, {"bpr": bpr.item()}

    @classmethod
    def loss_label(cls, cfg: "Config") -> str:
        """How the learning curve's loss is labelled."""
        return "BPR + L2"

    def ranking_module(self) -> nn.Module:
        """The module whose ``full_embeddings(adj)`` ranks items (the served model)."""
        return self.module

    def payload(self) -> dict:
        """What is saved as the best model (see :mod:`raymm.models.registry`)."""
        return to_payload(self.ranking_module())


@dataclass(frozen=True)
class Stage:
    """One Ray Train run of a method: its name (run-name suffix, MLflow child run), its task, and
    how long it may train. ``min_epochs``: evaluations in these first epochs do not count against
    ``patience`` (an objective that changes over the first epochs, such as ODMT's KD ramp-up, is not
    judged before it is fixed)."""

    name: str
    task: type[Task]
    epochs: int
    patience: int
    min_epochs: int = 0


class Method:
    """A distillation method (or a baseline). Subclasses set the class attributes and override
    what differs; see :mod:`raymm.methods.sgfd` for a worked example."""

    name: ClassVar[str]
    family: ClassVar[str] = "graph"  # graph (user/item embeddings) | sequential (next item from a history)
    config_cls: ClassVar[type | None] = None  # its ``method.<name>`` section, None when it has no options
    needs_features: ClassVar[bool] = False
    lazy_adam: ClassVar[bool] = False  # its train.* stage is LightGCN on base Task's optimizer: train.optimizer applies

    def check(self, cfg: "Config", dataset: "Dataset") -> None:
        """Refuse a config the dataset cannot serve, before anything trains."""
        from raymm.errors import InputError

        if cfg.train.optimizer == "lazy_adam":
            if not self.lazy_adam:
                raise InputError(f"train.optimizer=lazy_adam is not supported by method {self.name} (only by lightgcn "
                                 "and promptmm's student); use adam")
            if cfg.train.use_gpu and cfg.train.num_workers > 1:
                raise InputError("train.optimizer=lazy_adam with several GPU workers: NCCL cannot all-reduce the "
                                 "row-sparse gradients; use one GPU worker or adam")
        if self.needs_features and not dataset.manifest.modalities:
            raise InputError(f"method {self.name} needs modality features; dataset {dataset.uri} has none "
                             "(features/<modality>.parquet)")

    def min_fanout_layers(self, cfg: "Config") -> int:
        """How many sampled layers its models need (``train.fanouts`` must have at least this many)."""
        return cfg.model.num_layers

    def precompute(self, cfg: "Config", dataset: "Dataset", shared: SharedData) -> None:
        """Fill ``shared`` once on the driver (features, labels, tokens ...)."""
        if self.needs_features:
            shared.features = dataset.read_all_features()

    def stages(self, cfg: "Config") -> list[Stage]:
        raise NotImplementedError

    def provided(self, stage: Stage, cfg: "Config", shared: SharedData, tracking_uri: str | None) -> dict | None:
        """A saved payload that stands in for ``stage`` (so it is not trained), or None."""
        return None

    def after_stage(self, stage: Stage, payload: dict, shared: SharedData) -> None:
        """Hand a finished (or provided) stage's best payload to the next stage."""

    def served_extras(self, payloads: dict[str, dict]) -> dict[str, dict]:
        """Further payloads to register beside the served one (suffix -> payload)."""
        return {}
