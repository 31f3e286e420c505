"""The Ray Train worker loop: sampled mini-batch training, sharded full-ranking evaluation,
early stopping and checkpointing.

Each worker receives its shard of the training interactions from Ray Data, draws negatives and
samples neighbourhoods with DGL on the CPU (the next batches in a background thread while a step
trains, ``train.prefetch``), runs the model on its device (DDP across workers),
evaluates its share of the validation users, and all-reduces the metric sums.
"""

from __future__ import annotations

import resource
import tempfile
import threading
import time

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from raymm.config import Config
from raymm.errors import DivergedError
from raymm.evaluation import finalize
from raymm.methods.base import SharedData, Stage
from raymm.train.prefetch import Prefetcher
from raymm.train.state import TrainState, load_checkpoint, save_checkpoint
from raymm.tracking import metric_key


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


def _evaluate(task, which: str, cfg: Config) -> dict[str, float]:
    return finalize(_all_reduce(task.eval_sums(which)).cpu(), cfg.eval.ks)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _count_nodes(world: int) -> int:
    """How many distinct Ray nodes this run's workers are on (reported every epoch)."""
    node_ids = [ray.get_runtime_context().get_node_id()]
    if world > 1 and dist.is_available() and dist.is_initialized():
        gathered = [None] * world
        dist.all_gather_object(gathered, node_ids[0])
        node_ids = gathered
    return len(set(node_ids))


def train_loop_per_worker(config: dict) -> None:
    cfg = Config.model_validate(config["cfg"])
    shared: SharedData = ray.get(config["shared"])
    spec: Stage = config["stage"]
    stage = spec.name
    log_fn = config.get("log_fn")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if log_fn is not None and rank == 0 and hasattr(log_fn, "warm"):  # MLflow's import beside the setup
        threading.Thread(target=log_fn.warm, name="raymm-mlflow-warm", daemon=True).start()
    num_nodes = _count_nodes(world)
    device = ray.train.torch.get_device()
    epochs, patience = spec.epochs, spec.patience

    torch.manual_seed(cfg.train.seed)
    task = spec.task(cfg, shared)
    state = TrainState()
    best_model = None
    optim_state = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            state, model_state, optim_state, best_model = load_checkpoint(d)
        task.module.load_state_dict(model_state)
        if rank == 0:
            print(f"[raymm] {stage}: resumed from checkpoint: next epoch {state.next_epoch + 1}, "
                  f"best epoch so far {state.best_epoch + 1}", flush=True)
    else:
        task.module.to(device)
        task.on_fresh_start(device)
    model = ray.train.torch.prepare_model(task.module)  # to the worker's device; DDP when world > 1
    module = model.module if hasattr(model, "module") else model
    task.module = module
    optimizer = task.optimizer(list(model.parameters()))
    if optim_state is not None:
        optimizer.load_state_dict(optim_state)
    if best_model is None:
        best_model = task.payload()

    task.setup(rank, world, device)
    shard = ray.train.get_dataset_shard("train")
    selector = cfg.eval.select_metric

    if state.stopped_early or state.next_epoch >= epochs:  # finished before a restart: report it again
        _report(rank, state, task, optimizer, best_model, state.history[-1] if state.history else {})
        return
    loop_start, first_epoch = time.perf_counter(), state.next_epoch
    for epoch in range(state.next_epoch, epochs):
        epoch_seed = int(np.random.SeedSequence([cfg.train.seed, rank, epoch]).generate_state(1)[0])
        task.start_epoch(epoch_seed, epoch)
        model.train()
        start = time.perf_counter()
        loss_sum = torch.zeros(2, dtype=torch.float64)
        part_sums: dict[str, float] = {}
        rows_iter = shard.iter_batches(batch_size=cfg.train.batch_size, batch_format="numpy",
                                       local_shuffle_buffer_size=cfg.train.shuffle_buffer_rows or None,
                                       local_shuffle_seed=epoch_seed)
        with Prefetcher(rows_iter, task.batch_from_rows, cfg.train.prefetch) as batches:
            for step, (rows, batch) in enumerate(batches, start=1):
                n = len(rows["user_id"])
                loss, parts = _train_step(model, task, optimizer, batch, stage, epoch, step)
                loss_sum += torch.tensor([loss * n, n], dtype=torch.float64)
                for k, v in parts.items():
                    part_sums[k] = part_sums.get(k, 0.0) + v * n
        train_seconds = time.perf_counter() - start
        bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
        if bad:  # never evaluated, saved as best or registered
            _diverged(stage, epoch, step, f"parameters became non-finite ({', '.join(bad[:3])})", {})
        names = sorted(part_sums)
        totals = _all_reduce(torch.tensor([*loss_sum.tolist(), train_seconds, *(part_sums[k] for k in names)],
                                          dtype=torch.float64, device=device)).cpu()
        rows_seen = max(float(totals[1]), 1.0)
        metrics = {"epoch": epoch, "num_nodes": num_nodes, "train_loss": float(totals[0] / rows_seen),
                   "train_rows": int(totals[1]), "epoch_seconds": float(totals[2] / world),
                   "interactions_per_s": float(totals[1] / max(totals[2] / world, 1e-9)),
                   "worker_peak_rss_mb": peak_rss_mb()}
        metrics.update({f"loss_{k}": float(v / rows_seen) for k, v in zip(names, totals[3:])})

        if (epoch + 1) % cfg.eval.every == 0 or epoch + 1 == epochs:
            model.eval()
            eval_start = time.perf_counter()
            val_metrics = _evaluate(task, "val", cfg)
            metrics.update({f"val_{k}": v for k, v in val_metrics.items()})
            if state.observe(epoch, val_metrics[selector], patience, spec.min_epochs):
                state.best_val = val_metrics
                best_model = task.payload()
                best_model["epoch"] = epoch
                if task.has_split("test"):  # reported at the best validation epoch; never used to select
                    state.best_test = _evaluate(task, "test", cfg)
            metrics["eval_seconds"] = time.perf_counter() - eval_start
        # epochs_done counts this run's epochs across restarts (Tune's training_iteration restarts at 1
        # when an interrupted trial is relaunched and its Train run resumes from a checkpoint)
        metrics.update({"best_epoch": state.best_epoch, "best_val_score": state.best_score, "epochs_done": epoch + 1})
        state.next_epoch = epoch + 1
        state.history.append(metrics)

        if rank == 0:
            k = selector.split("@")[1]
            keys = dict.fromkeys((f"val_{selector}", f"val_ndcg@{k}"))  # the selector first, no repeats
            shown = " ".join(f"{key}={metrics[key]:.4f}" for key in keys if key in metrics)
            per_epoch = (time.perf_counter() - loop_start) / (epoch + 1 - first_epoch)  # training + evaluation
            left = f", at most {_duration(per_epoch * (epochs - epoch - 1))} left" if epoch + 1 < epochs else ""
            print(f"[raymm] {stage} epoch {epoch + 1}/{epochs} loss={metrics['train_loss']:.4f} {shown} "
                  f"({metrics['epoch_seconds']:.1f}s, {metrics['interactions_per_s']:.0f} interactions/s{left})",
                  flush=True)
            if log_fn is not None:
                log_fn(metrics, epoch)
        _report(rank, state, task, optimizer, best_model, metrics)
        if state.stopped_early:
            if rank == 0:
                print(f"[raymm] {stage}: early stop, no {selector} improvement for {patience} evaluations; "
                      f"best epoch {state.best_epoch + 1}", flush=True)
            break


def _train_step(model, task, optimizer, batch, stage: str, epoch: int, step: int) -> tuple[float, dict]:
    """One optimiser step on ``batch``; (the loss, its parts). A non-finite loss or gradient stops the run."""
    loss, parts = task.loss(model, batch)
    if not torch.isfinite(loss):
        _diverged(stage, epoch, step, f"the loss is {loss.item()}", parts)
    optimizer.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not _finite(grads):  # one host sync
        bad = [n for n, p in model.named_parameters() if p.grad is not None and not _finite([p.grad])]
        _diverged(stage, epoch, step, f"the gradient of {', '.join(bad[:3])} is non-finite", parts)
    optimizer.step()
    return loss.item(), parts


def _duration(seconds: float) -> str:
    """``95`` -> ``"1m35s"``; the stage's remaining time if no early stop ends it sooner."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s" if m else f"{s}s"


def _finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every entry is finite (of a row-sparse gradient: its stored rows)."""
    return not tensors or bool(torch.stack([torch.isfinite(t._values() if t.is_sparse else t).all()
                                            for t in tensors]).all())


def _diverged(stage: str, epoch: int, step: int, what: str, parts: dict) -> None:
    terms = ", ".join(f"{k}={v:.4g}" for k, v in parts.items())
    raise DivergedError(f"{stage} diverged at epoch {epoch + 1}, step {step}: {what}"
                        + (f" (loss terms: {terms})" if terms else "")
                        + "; lower the learning rate or the loss weights")


def _report(rank: int, state: TrainState, task, optimizer, best_model: dict, metrics: dict) -> None:
    """Every worker reports; rank 0 attaches the checkpoint (state, model, optimiser, best model)."""
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if rank == 0:
            save_checkpoint(tmp, state, task.module.state_dict(), optimizer.state_dict(), best_model)
            ckpt = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({metric_key(k): v for k, v in metrics.items()}, checkpoint=ckpt)
