"""Propagation cost per training step: sampled blocks vs full-graph propagation, per method, and the
model's propagation against a bare ``torch.sparse.mm`` on the same adjacency.

    .venv/bin/python benchmarks/bench_propagation.py                 # synthetic default (+ TikTok if imported)
    .venv/bin/python benchmarks/bench_propagation.py --threads 1

Part 1 (what ``train.propagation: auto`` decides on, see ``raymm.sampling.choose``): for each config,
one process builds the method's first-stage task as one Ray Train worker would (rank 0 of 2), draws
``--steps`` training batches of the config's batch size, and times building the batch (negatives,
then DGL sampling, or nothing for full) and the step (forward, loss, backward, Adam), each mode
interleaved ``--repeats`` times; medians are printed in ms, with the edge-work ratio ``L x E`` /
sampled estimate that ``auto`` compares with 1/4.

``--stage 1`` times the second stage instead (PromptMM's student, distilled from an untrained teacher
of the same shape: the same work per step as from a trained one), ``--set`` overrides the configs.

Part 2 (issue 14's propagation target: within 1.2x of a bare sparse product): 2-layer propagation,
forward + backward, d = 64, of (a) a COO ``torch.sparse.mm`` twice on the normalised adjacency, (b)
``raymm.models.propagation.mean_of_layers_sampled`` on a full-propagation batch (what the models
run in ``full`` mode), (c) the same on a fan-out -1 sampled batch of all nodes through the edge
lists (``index_add``, the path before sparse blocks).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

import numpy as np
import torch

from raymm.config import load_config
from raymm.data.prepare import prepare_dataset
from raymm.methods.registry import get_method
from raymm.models.propagation import mean_of_layers_sampled
from raymm.sampling import FullNeighbourhood, NeighbourSampler, choose, make_batch, sampled_edges
from raymm.train.run import build_shared


def edge_ratio(graph, fanouts: list[int], batch: int) -> float:
    return len(fanouts) * len(graph.indices) / sampled_edges(fanouts, batch)


def per_step(config: str, steps: int, repeats: int, stage_index: int = 0, overrides: tuple[str, ...] = ()) -> None:
    res = {}
    for rep in range(repeats):
        for mode in ("sampled", "full"):
            cfg = load_config([config], [f"train.propagation={mode}", *overrides])
            dataset = prepare_dataset(cfg)
            shared = build_shared(dataset, cfg)
            method = get_method(cfg.method.name)
            stages = method.stages(cfg)
            torch.manual_seed(0)
            for earlier in stages[:stage_index]:  # an untrained earlier stage's model stands in (a teacher)
                before = earlier.task(cfg, shared)
                before.on_fresh_start("cpu")
                method.after_stage(earlier, before.payload(), shared)
            stage = stages[stage_index]
            task = stage.task(cfg, shared)
            task.on_fresh_start("cpu")
            task.setup(0, 2, torch.device("cpu"))
            task.module.train()
            opt = task.optimizer([p for p in task.module.parameters() if p.requires_grad])
            task.start_epoch(0, 0)
            users, items = dataset.read_interactions()["train"]
            order = np.random.default_rng(0).permutation(len(users))
            b = cfg.train.batch_size
            build, step = [], []
            for s in range(0, min(len(users), (steps + 1) * b), b):
                rows = {"user_id": users[order[s:s + b]], "item_id": items[order[s:s + b]]}
                t0 = time.perf_counter()
                batch = task.batch_from_rows(rows)
                t1 = time.perf_counter()
                loss, _ = task.loss(task.module, batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
                t2 = time.perf_counter()
                if s:  # the first step warms up
                    build.append(t1 - t0)
                    step.append(t2 - t1)
            res.setdefault(mode, []).append((statistics.median(build), statistics.median(step)))
    t = cfg.train
    ratio = edge_ratio(shared.graph, t.fanouts, t.batch_size)
    auto = choose(shared.graph, t.fanouts, t.batch_size, "auto")
    line = []
    for mode, runs in res.items():
        bld, stp = (statistics.median(x) * 1000 for x in zip(*runs))
        line.append(f"{mode}: batch {bld:.1f} + step {stp:.1f} = {bld + stp:.1f} ms")
    extra = f", {' '.join(overrides)}" if overrides else ""
    print(f"{config} ({cfg.method.name}, {stage.name}{extra}; L x E / sampled = {ratio:.2f}, auto -> {auto}): "
          + "; ".join(line), flush=True)


def bare_vs_model(config: str, repeats: int) -> None:
    cfg = load_config([config], [])
    shared = build_shared(prepare_dataset(cfg), cfg)
    g = shared.graph
    adj = g.normalized_adjacency().mat.to_sparse()  # the same matrix as a COO tensor
    h0 = torch.randn(g.num_nodes, 64, requires_grad=True)
    full = make_batch(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros((1, 1), np.int64), g.num_users,
                      FullNeighbourhood(g, 2))
    edges = NeighbourSampler(g, [-1, -1]).sample(torch.arange(g.num_nodes))
    edges = [dataclasses.replace(b, adj=None) for b in edges]
    h0_edges = h0.detach()[edges[0].src_nid].requires_grad_()

    def bare():
        h1 = torch.sparse.mm(adj, h0)
        ((h0 + h1 + torch.sparse.mm(adj, h1)) / 3).sum().backward()

    def model():
        mean_of_layers_sampled(h0, full.layers(2), g.num_nodes).sum().backward()

    def index_add():
        mean_of_layers_sampled(h0_edges, edges, g.num_nodes).sum().backward()

    times = {f.__name__: [] for f in (bare, model, index_add)}
    for _ in range(repeats):
        for f in (bare, model, index_add):
            t = time.perf_counter()
            f()
            times[f.__name__].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"{config}: 2-layer propagation fwd+bwd over {len(g.indices):,} edges, d=64: bare sparse.mm "
          f"{med['bare']:.1f} ms; model, full mode {med['model']:.1f} ms ({med['model'] / med['bare']:.2f}x); "
          f"edge lists + index_add {med['index_add']:.1f} ms ({med['index_add'] / med['bare']:.2f}x)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=None)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--stage", type=int, default=0,
                        help="which stage of each config's method to time (1 = PromptMM's student, with an "
                             "untrained teacher); part 2 runs only for stage 0")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (train.batch_size=4096 ...)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = args.configs or (["conf/lightgcn.yaml", "conf/sgfd.yaml", "conf/promptmm.yaml"]
                               + (["conf/lightgcn_tiktok.yaml", "conf/sgfd_tiktok.yaml", "conf/promptmm_tiktok.yaml"]
                                  if os.path.exists("datasets/tiktok/manifest.json") else []))
    print(f"torch threads: {torch.get_num_threads()}")
    for config in configs:
        per_step(config, args.steps, args.repeats, args.stage, tuple(args.set))
    if args.stage:
        return
    for config in dict.fromkeys(c.replace("sgfd", "lightgcn").replace("promptmm", "lightgcn") for c in configs):
        bare_vs_model(config, 3 * args.repeats)


if __name__ == "__main__":
    main()
