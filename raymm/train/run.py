"""Driver side of a training run: build the shared graph, stream the training interactions with
Ray Data into a :class:`~ray.train.torch.TorchTrainer`, and collect the best model.

Relaunching with the same ``run_name`` and ``storage_path`` resumes from the latest checkpoint
(Ray Train V2 restores a run from ``storage_path/run_name``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import ray
import ray.data
import ray.train
import yaml
from ray.data import RandomSeedConfig
from ray.data.expressions import col
from ray.train.torch import TorchTrainer

from raymm.config import Config, flatten, flatten_tree, load_config
from raymm.configbase import ConfigError
from raymm.data.store import Dataset, resolve
from raymm.errors import InputError
from raymm.graph import EvalSplit, TrainGraph
from raymm.methods.base import SharedData, Stage
from raymm.methods.registry import get_method
from raymm.sampling import choose
from raymm.storage import checkpoint_dirs, is_uri, join
from raymm.train.state import TrainState, load_checkpoint
from raymm.train.worker import train_loop_per_worker


@dataclass
class TrainOutcome:
    state: TrainState  # history, best epoch, best validation and test metrics
    best_model: dict  # {"hparams", "state_dict", "epoch"}
    checkpoint_path: str  # local path or URI of the run's latest checkpoint directory


def run_name_for(cfg: Config) -> str:
    """Explicit ``output.run_name``, else the method name plus a hash of the config (so the same
    config relaunched resumes, and a different one starts afresh)."""
    if cfg.output.run_name:
        return cfg.output.run_name
    digest = hashlib.sha1(json.dumps(cfg.model_dump(), sort_keys=True).encode()).hexdigest()[:8]
    return f"{cfg.method.name}-{digest}"


# Settings a relaunch may change without changing what it trains: where it runs and where it logs.
RESUME_MAY_CHANGE = ("output.", "mlflow.", "train.num_workers", "train.use_gpu", "train.cpus_per_worker",
                     "train.placement_strategy", "train.max_failures", "train.resource_wait_s", "train.poll_interval_s",
                     "eval.user_batch_size")


def config_changes(old_tree: dict, cfg: Config) -> list[str]:
    """``"key: old -> new"`` for every key on which a saved config (``old_tree``, as written with
    ``yaml.safe_dump(cfg.model_dump())``) and ``cfg`` disagree, but :data:`RESUME_MAY_CHANGE`. An
    option added to raymm after the old run was launched is absent from ``old_tree``: at its default
    it changes nothing."""
    old, new = flatten_tree(old_tree), flatten(cfg)
    defaults = flatten(load_config(None, [f"method.name={cfg.method.name}"]))
    missing = "<unset>"
    changed = sorted(k for k in old.keys() | new.keys()
                     if old.get(k, missing) != new.get(k, missing) and not k.startswith(RESUME_MAY_CHANGE)
                     and not (k not in old and k in defaults and new[k] == defaults[k]))
    return [f"{k}: {old.get(k, missing)!r} -> {new.get(k, missing)!r}" for k in changed]


def _listed(changes: list[str]) -> str:
    return "; ".join(changes[:8]) + (f" and {len(changes) - 8} more" if len(changes) > 8 else "")


def check_resume(cfg: Config, run_name: str, run_dir: str) -> None:
    """Refuse to relaunch run ``run_name`` with a config that trains something else.

    A relaunch under an existing run name resumes that run's checkpoints and skips its finished
    stages, so a changed config would be silently ignored. ``<run_dir>/config.yaml`` (written by the
    first launch) must agree with ``cfg`` on every key but :data:`RESUME_MAY_CHANGE`; the error names
    each key that differs. (The checkpoints carry their own record: :func:`check_checkpoint_config`.)"""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        return
    with open(path) as f:
        changes = config_changes(yaml.safe_load(f) or {}, cfg)
    if changes:
        raise ConfigError(f"output.run_name {run_name!r}: {path} was written by a run with a different config "
                          f"({_listed(changes)}); relaunching under this name would resume that run's checkpoints "
                          f"and ignore the change. Give output.run_name a new name (or delete {run_dir} and the "
                          f"run's checkpoints to start it again)")


CONFIG_RECORD = "raymm_config.yaml"  # beside a Ray Train run's checkpoints: the config that wrote them


def check_checkpoint_config(cfg: Config, storage_path: str, run_name: str) -> None:
    """Before Ray Train restores ``<storage_path>/<run_name>``: refuse checkpoints that another
    config wrote, else record ``cfg`` there (:data:`CONFIG_RECORD`) on the first launch.

    Ray resumes whatever it finds under the run's name, finished runs included. The run directory's
    ``config.yaml`` (:func:`check_resume`) lives on the driver and may be gone (moved, a new head
    node) while the checkpoints stay in ``output.storage``; a relaunch with another config then
    reported the old run's results under the new config. So the record travels with the
    checkpoints. Checkpoints without a record (an older raymm wrote them) are refused too: what
    trained them is unknown."""
    run_path = join(storage_path, run_name)
    record = join(run_path, CONFIG_RECORD)
    fs, root = resolve(run_path)
    path = f"{root}/{CONFIG_RECORD}"
    if fs.get_file_info(path).type == pafs.FileType.File:
        with fs.open_input_stream(path) as f:
            changes = config_changes(yaml.safe_load(f.read().decode()) or {}, cfg)
        if changes:
            raise ConfigError(f"checkpoints at {run_path} were written by a run with a different config "
                              f"({_listed(changes)}; {record}); resuming them would ignore the change. Give "
                              f"output.run_name a new name, or delete {run_path} to train it again")
        return
    if checkpoint_dirs(run_path):
        raise ConfigError(f"checkpoints at {run_path} have no record of the config that wrote them ({record} is "
                          f"missing: an older raymm wrote them), so resuming them could ignore a changed setting. "
                          f"Give output.run_name a new name, or delete {run_path} to train it again")
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(yaml.safe_dump(cfg.model_dump(), sort_keys=False).encode())


def build_shared(dataset: Dataset, cfg: Config) -> SharedData:
    """Validated interactions -> graph and evaluation splits, plus what the method precomputes once
    here (features, PromptMM's PCA hard tokens, SGFD's labels ...)."""
    method = get_method(cfg.method.name)
    method.check(cfg, dataset)
    splits = dataset.read_interactions()
    graph = TrainGraph.from_interactions(*splits["train"], dataset.num_users, dataset.num_items)
    test = EvalSplit.from_interactions(*splits["test"]) if len(splits["test"][0]) else None
    shared = SharedData(graph, EvalSplit.from_interactions(*splits["val"]), test)
    method.precompute(cfg, dataset, shared)
    return shared


def _input_error_of(err) -> InputError | None:
    """The bad-input error (a diverged run ...) a worker raised, if that is why the group failed."""
    for exc in getattr(err, "worker_failures", {}).values():
        seen = 0
        while exc is not None and seen < 5:
            if isinstance(exc, InputError):
                return exc
            exc = getattr(exc, "cause", None) or exc.__cause__
            seen += 1
    return None


ROWS_PER_BLOCK = 1_000_000  # materialised training rows per object-store block (train_interactions)


def row_blocks(graph: TrainGraph, rows_per_block: int = ROWS_PER_BLOCK) -> list[tuple[np.ndarray, np.ndarray]]:
    """The graph's training interactions (ordered by user, then item) as (users, items) blocks of
    at most ``rows_per_block`` rows; at least one block, even for no rows."""
    users, items = graph.interactions()
    pieces = max(1, -(-len(users) // rows_per_block))
    return list(zip(np.array_split(users, pieces), np.array_split(items, pieces)))


def train_interactions(dataset: Dataset, materialize: bool, graph: TrainGraph | None = None,
                       rows_per_block: int = ROWS_PER_BLOCK, seed: int | None = None) -> ray.data.Dataset:
    """The TRAIN rows (user_id, item_id), in blocks whose order is shuffled every epoch.

    With ``materialize`` and the driver's ``graph`` (built by :func:`build_shared` from the same,
    validated Parquet rows), the rows are put in the object store from the graph, ordered by user
    then item, in blocks of at most ``rows_per_block`` rows: every epoch iterates those blocks and
    no Ray Data read runs (``read_parquet(...).materialize()`` took 4.7-9.8 s per stage on TikTok's
    60k rows, mostly starting Ray Data's read tasks). Blocks are kept large on purpose: a worker's
    local shuffle buffer takes in whole blocks, so one block of TikTok's 60k rows shuffles every
    row, while blocks of 15k and a 10k buffer narrowed each batch to a quarter of the users
    (LightGCN on TikTok, one worker, 10 epochs: validation Recall@20 0.0847 and 0.0840, against
    0.0857 and 0.0867 with one block). Their order is drawn from ``seed`` (``train.seed``) and the
    epoch's index, so a run is repeated exactly where its training is deterministic.

    Without ``graph`` they are read once from the Parquet shards; without ``materialize`` they are
    streamed from the shards every epoch."""
    if materialize and graph is not None:
        tables = [pa.table({"user_id": u, "item_id": i}) for u, i in row_blocks(graph, rows_per_block)]
        order = None if seed is None else RandomSeedConfig(seed=seed, reseed_after_execution=True)
        return ray.data.from_arrow(tables).randomize_block_order(seed=order)
    ds = ray.data.read_parquet(dataset.interaction_paths(), filesystem=dataset.fs,
                               columns=["user_id", "item_id", "split"])
    ds = ds.filter(expr=col("split") == "train").select_columns(["user_id", "item_id"])
    return (ds.materialize() if materialize else ds).randomize_block_order()


def should_materialize(dataset: Dataset, setting: str = "auto", object_store_bytes: float | None = None) -> bool:
    """``train.materialize``: ``auto`` reads the training rows (16 bytes each) once when they take at
    most a quarter of the cluster's object store, else streams them.

    Streaming re-plans and re-reads the Parquet shards every epoch (listing and footer-reading tasks,
    fresh worker processes): on TikTok (60k rows, 2 workers on 2 cores) a LightGCN epoch took 7 s
    streamed and 1.5 s materialised.
    """
    if setting != "auto":
        return setting == "always"
    if object_store_bytes is None:
        object_store_bytes = ray.cluster_resources().get("object_store_memory", 0)
    return 16 * dataset.manifest.split_counts.get("train", 0) <= 0.25 * object_store_bytes


def run_training(cfg: Config, dataset: Dataset, storage_path: str, run_name: str,
                 stage: Stage, shared: SharedData, log_fn: Callable[[dict, int], None] | None = None,
                 callbacks: list | None = None) -> TrainOutcome:
    """One Ray Train run of a method's ``stage`` (resumed from its checkpoints, if any were written
    with this config: :func:`check_checkpoint_config`)."""
    check_checkpoint_config(cfg, storage_path, run_name)
    materialize = should_materialize(dataset, cfg.train.materialize)
    how = "read once into the object store" if materialize else "streamed from Parquet every epoch"
    if get_method(cfg.method.name).family == "graph":
        t = cfg.train
        how += f"; propagation {choose(shared.graph, t.fanouts, t.batch_size, t.propagation)} ({t.propagation})"
    print(f"[raymm] {stage.name}: training rows {how}", flush=True)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg.model_dump(), "shared": ray.put(shared), "log_fn": log_fn, "stage": stage},
        scaling_config=ray.train.ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu,
                                               resources_per_worker={"CPU": cfg.train.cpus_per_worker},
                                               placement_strategy=cfg.train.placement_strategy),
        run_config=ray.train.RunConfig(
            name=run_name, storage_path=storage_path,
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2), callbacks=callbacks,
            failure_config=ray.train.FailureConfig(max_failures=cfg.train.max_failures),
            # Train V2's structured worker logging echoes every print a second time to the driver.
            worker_runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_WORKER_STRUCTURED_LOGGING": "0"}},
            # the controller's INFO lines (resources asked, worker group started, snapshot found) stay
            # in its log files; warnings and errors (a worker failed, a restart) still reach the console
            logging_config=ray.train.LoggingConfig(log_level="WARNING")),
        datasets={"train": train_interactions(dataset, materialize, shared.graph, seed=cfg.train.seed)},
    )
    # Train V2 reads it in the controller, which gets it from this process's environment at fit()
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = str(cfg.train.poll_interval_s)
    try:
        result = trainer.fit()
    except ray.train.WorkerGroupError as e:
        raise _input_error_of(e) or e
    if result.checkpoint is None:
        raise RuntimeError(f"training run {run_name} produced no checkpoint")
    with result.checkpoint.as_directory() as d:
        state, _, _, best_model = load_checkpoint(d)
    path = result.checkpoint.path  # on a URI filesystem this has lost its scheme: put it back
    if is_uri(storage_path):
        path = join(storage_path, run_name, path.rstrip("/").rsplit("/", 1)[-1])
    return TrainOutcome(state, best_model, path)

