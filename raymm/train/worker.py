"""The Ray Train worker loop: sampled mini-batch training, sharded full-ranking evaluation,
early stopping and checkpointing.

Each worker receives its shard of the training interactions from Ray Data, draws negatives and
samples neighbourhoods with DGL on the CPU, runs the model on its device (DDP across workers),
evaluates its share of the validation users, and all-reduces the metric sums.
"""

from __future__ import annotations

import copy
import resource
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from raymm.config import Config
from raymm.evaluation import finalize, metric_sums
from raymm.graph import EvalSplit, TrainGraph
from raymm.losses import bpr_loss, l2_penalty
from raymm.models.lightgcn import LightGCN
from raymm.sampling import NegativeSampler, NeighbourSampler, make_batch
from raymm.train.state import TrainState, load_checkpoint, save_checkpoint


@dataclass
class SharedData:
    """Built once by the driver and put in the object store; every worker on a node reads the
    same copy (numpy arrays are zero-copy from shared memory)."""

    graph: TrainGraph
    val: EvalSplit
    test: EvalSplit | None


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


def _evaluate(module: LightGCN, adj, split: EvalSplit, graph: TrainGraph, cfg: Config) -> dict[str, float]:
    users, items = module.full_embeddings(adj)
    sums = metric_sums(users, items, split, graph, cfg.eval.ks, cfg.eval.user_batch_size)
    return finalize(_all_reduce(sums).cpu(), cfg.eval.ks)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_loop_per_worker(config: dict) -> None:
    cfg = Config.model_validate(config["cfg"])
    shared: SharedData = ray.get(config["shared"])
    log_fn = config.get("log_fn")
    graph = shared.graph
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()

    torch.manual_seed(cfg.train.seed)
    model = LightGCN(graph.num_users, graph.num_items, cfg.model.embedding_dim, cfg.model.num_layers,
                     cfg.model.init_std)
    state = TrainState()
    best_model = {"hparams": model.hparams(), "state_dict": copy.deepcopy(model.state_dict()), "epoch": -1}
    optim_state = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            state, model_state, optim_state, best_model = load_checkpoint(d)
        model.load_state_dict(model_state)
        if rank == 0:
            print(f"[raymm] resumed from checkpoint: next epoch {state.next_epoch + 1}, "
                  f"best epoch so far {state.best_epoch + 1}", flush=True)
    model = ray.train.torch.prepare_model(model)  # to the worker's device; DDP when world > 1
    module: LightGCN = model.module if hasattr(model, "module") else model
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    if optim_state is not None:
        optimizer.load_state_dict(optim_state)

    neighbours = NeighbourSampler(graph, cfg.train.fanouts)
    adj = graph.normalized_adjacency(device)
    val = shared.val.shard(rank, world)
    test = shared.test.shard(rank, world) if shared.test is not None else None
    shard = ray.train.get_dataset_shard("train")
    selector = cfg.eval.select_metric

    for epoch in range(state.next_epoch, cfg.train.epochs):
        epoch_seed = int(np.random.SeedSequence([cfg.train.seed, rank, epoch]).generate_state(1)[0])
        negatives = NegativeSampler(graph, seed=epoch_seed)
        model.train()
        start = time.perf_counter()
        loss_sum = torch.zeros(2, dtype=torch.float64)
        for rows in shard.iter_batches(batch_size=cfg.train.batch_size, batch_format="numpy",
                                       local_shuffle_buffer_size=cfg.train.shuffle_buffer_rows or None,
                                       local_shuffle_seed=epoch_seed):
            users = rows["user_id"].astype(np.int64)
            pos = rows["item_id"].astype(np.int64)
            batch = make_batch(users, pos, negatives.sample(users, 1), graph.num_users, neighbours).to(device)
            emb, ego = model(batch)
            loss = bpr_loss(emb[batch.user_pos], emb[batch.pos_pos], emb[batch.neg_pos])
            loss = loss + cfg.train.reg_weight * l2_penalty(ego[batch.user_pos], ego[batch.pos_pos], ego[batch.neg_pos])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += torch.tensor([loss.item() * len(users), len(users)], dtype=torch.float64)
        train_seconds = time.perf_counter() - start
        totals = _all_reduce(torch.cat([loss_sum, torch.tensor([train_seconds], dtype=torch.float64)]).to(device)).cpu()
        metrics = {"epoch": epoch, "train_loss": float(totals[0] / max(totals[1], 1)),
                   "train_rows": int(totals[1]), "epoch_seconds": float(totals[2] / world),
                   "interactions_per_s": float(totals[1] / max(totals[2] / world, 1e-9)),
                   "worker_peak_rss_mb": peak_rss_mb()}

        if (epoch + 1) % cfg.eval.every == 0 or epoch + 1 == cfg.train.epochs:
            model.eval()
            eval_start = time.perf_counter()
            val_metrics = _evaluate(module, adj, val, graph, cfg)
            metrics.update({f"val_{k}": v for k, v in val_metrics.items()})
            if state.observe(epoch, val_metrics[selector], cfg.train.patience):
                state.best_val = val_metrics
                best_model = {"hparams": module.hparams(), "state_dict": copy.deepcopy(module.state_dict()),
                              "epoch": epoch}
                if test is not None:  # reported at the best validation epoch; never used to select
                    state.best_test = _evaluate(module, adj, test, graph, cfg)
            metrics["eval_seconds"] = time.perf_counter() - eval_start
        metrics.update({"best_epoch": state.best_epoch, "best_val_score": state.best_score})
        state.next_epoch = epoch + 1
        state.history.append(metrics)

        if rank == 0:
            shown = " ".join(f"{k}={metrics[k]:.4f}" for k in (f"val_{selector}", f"val_ndcg@{selector.split('@')[1]}")
                             if k in metrics)
            print(f"[raymm] epoch {epoch + 1}/{cfg.train.epochs} loss={metrics['train_loss']:.4f} {shown} "
                  f"({metrics['epoch_seconds']:.1f}s, {metrics['interactions_per_s']:.0f} interactions/s)", flush=True)
            if log_fn is not None:
                log_fn(metrics, epoch)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                save_checkpoint(tmp, state, module.state_dict(), optimizer.state_dict(), best_model)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)
        if state.stopped_early:
            if rank == 0:
                print(f"[raymm] early stop: no {selector} improvement for {cfg.train.patience} evaluations; "
                      f"best epoch {state.best_epoch + 1}", flush=True)
            break
