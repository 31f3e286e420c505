"""Training cost as the graph grows: raymm's sampled mini-batch LightGCN (Adam or LazyAdam, with or
without batches built ahead in a thread) vs full-graph propagation (sparse products over the
whole graph at every step).

    .venv/bin/python benchmarks/bench_training.py                      # 100k, 1M, 10M interactions
    .venv/bin/python benchmarks/bench_training.py --sizes 100000 --max-seconds 30
    .venv/bin/python benchmarks/bench_training.py --sizes 10000000 --variants sampled:lazy_adam:1,sampled:adam:0

For each size a synthetic dataset is generated (cached under benchmarks/.cache/), and each variant
(``mode:optimizer:prefetch``) runs in a fresh child process that does what ONE Ray Train worker
does: load the shared graph, take the training rows in the order a worker gets them (``--order``),
build each batch
(negatives, DGL neighbour sampling for the sampled mode; ``prefetch`` > 0: in a background thread,
:mod:`raymm.train.prefetch`), forward, BPR + L2, backward, the optimiser step (``adam`` or
``lazy_adam``, :mod:`raymm.optim`, with row-sparse embedding gradients). A variant runs one full
epoch or stops after ``--max-seconds``; the epoch time is then projected from the measured
throughput and marked "projected". Peak memory is the child's peak RSS (``ru_maxrss``): graph,
model, optimiser, batches. For the sampled mode it also prints the distinct nodes a step reads (the
input block's nodes: the embedding rows it gathers and the optimiser updates), the edges it samples
over all layers, and the step time per node read; these say why the epoch time grows faster than
the data (README, "What makes the slope").

Profile of the 10M step (2026-12-07 night, after the numba kernels of :mod:`raymm.cpu_kernels`,
idle 2-core machine, ``py-spy record -r 100 -d 45 -f raw -- python benchmarks/bench_training.py
--child sampled:lazy_adam:0 --data benchmarks/.cache/synthetic-10000000 --batch-size 2048
--max-seconds 40 --fanouts 10,10 --dim 32 --layers 2 --order worker``; shares of the training
loop's samples):

    36.8%  make_batch               raymm's block builder 20.4% (its kernel), DGL's sample_neighbors 13.4%
    24.8%  LazyAdam.step            the fused row update of the ~250k rows a batch reads (of 700k)
    22.5%  LightGCN.forward         block products 13.4%, the embedding gather 8.5%
    10.9%  backward                 the block products' transposes 7.0%
     2.2%  negatives

(Before them, the same day: LazyAdam.step 44.4%, make_batch 26.8% (sample_neighbors 8.1%, the
torch-op builder 16.6%), backward 15.1%, forward 13.6%. 2026-12-01, file order, DGL's
``to_block``: LazyAdam.step 36.6%, make_batch 32.1%, backward 17.1%, forward 13.2%.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _dataset(n: int, cache: str) -> str:
    from raymm.config import SyntheticConfig
    from raymm.data.synthetic import generate

    dest = os.path.join(cache, f"synthetic-{n}")
    if not os.path.exists(os.path.join(dest, "manifest.json")):
        cfg = SyntheticConfig(num_users=max(1000, n // 20), num_items=max(500, n // 50), num_interactions=n,
                              modalities={"image": 8})
        t = time.time()
        generate(cfg, dest)
        print(f"  generated {dest} in {time.time() - t:.0f}s", flush=True)
    return dest


def _child(mode: str, data: str, batch_size: int, max_seconds: float, fanouts: list[int], dim: int, layers: int,
           optimizer: str, prefetch: int, order: str) -> dict:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import torch

    from raymm.data.store import load_dataset
    from raymm.graph import TrainGraph
    from raymm.losses import bpr_loss, l2_penalty
    from raymm.models.lightgcn import LightGCN
    from raymm.models.propagation import mean_of_layers_full
    from raymm.optim import LazyAdam
    from raymm.sampling import NegativeSampler, NeighbourSampler, make_batch
    from raymm.train.prefetch import Prefetcher
    from raymm.train.run import row_blocks

    torch.manual_seed(0)
    ds = load_dataset(data, verify_checksums=False)
    graph = np.load(os.path.join(data, "..", os.path.basename(data) + ".graph.npz"))
    graph = TrainGraph(ds.num_users, ds.num_items, graph["indptr"], graph["indices"], graph["degree"])
    model = LightGCN(ds.num_users, ds.num_items, dim, layers)
    model.embedding.sparse = optimizer == "lazy_adam"
    opt = (LazyAdam if optimizer == "lazy_adam" else torch.optim.Adam)(model.parameters(), lr=1e-3)
    negatives = NegativeSampler(graph, seed=0)
    sampler = NeighbourSampler(graph, fanouts) if mode == "sampled" else None
    adj = graph.normalized_adjacency() if mode == "full" else None
    train_rows = int(graph.indptr[graph.num_users])

    def rows():  # the training rows in the order a worker reads them (see --order)
        if order == "file":  # streamed from the Parquet shards in file order
            for path in ds.interaction_paths():
                for rb in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=["user_id", "item_id", "split"]):
                    rb = rb.filter(pc.equal(rb.column("split"), "train"))
                    if rb.num_rows:
                        yield rb.column("user_id").to_numpy(), rb.column("item_id").to_numpy()
            return
        # the blocks the job materialises from the graph, in random order; the worker's local shuffle
        # buffer takes whole blocks in, so a batch draws from all rows of its block (the few rows a
        # block leaves over mix into the next)
        blocks = row_blocks(graph)
        rng = np.random.default_rng(0)
        for b in rng.permutation(len(blocks)):
            u, i = blocks[b]
            perm = rng.permutation(len(u))
            for s in range(0, len(u), batch_size):
                yield u[perm[s:s + batch_size]], i[perm[s:s + batch_size]]

    def build(r):  # what Task.batch_from_rows does: negatives, then the sampled blocks
        users, pos = r
        neg = negatives.sample(users, 1)
        return make_batch(users, pos, neg, graph.num_users, sampler) if mode == "sampled" else neg

    n_rows = steps = nodes_read = edges = 0
    start = time.perf_counter()
    with Prefetcher(rows(), build, prefetch) as batches:
        for (users, pos), batch in batches:
            if mode == "sampled":
                emb, ego = model(batch)
                u, p, n = emb[batch.user_pos], emb[batch.pos_pos], emb[batch.neg_pos]
                eu, ep, en = ego[batch.user_pos], ego[batch.pos_pos], ego[batch.neg_pos]
            else:
                neg = batch
                e = mean_of_layers_full(model.embedding.weight, adj, layers)
                ui, pi, ni = torch.from_numpy(users), torch.from_numpy(pos + ds.num_users), torch.from_numpy(neg + ds.num_users)
                u, p, n = e[ui], e[pi], e[ni]
                w = model.embedding.weight
                eu, ep, en = w[ui], w[pi], w[ni]
            loss = bpr_loss(u, p, n) + 1e-4 * l2_penalty(eu, ep, en)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n_rows += len(users)
            steps += 1
            if mode == "sampled":  # the rows a step reads and updates, and the edges it samples
                nodes_read += len(batch.blocks[0].src_nid)
                edges += sum(len(b.edge_src) for b in batch.blocks)
            if time.perf_counter() - start > max_seconds:
                break
    seconds = time.perf_counter() - start
    full_epoch = n_rows >= train_rows
    return {"mode": mode, "optimizer": optimizer, "prefetch": prefetch, "order": order, "train_rows": train_rows, "rows": n_rows,
            "steps": steps, "seconds": seconds, "interactions_per_s": n_rows / seconds,
            "epoch_seconds": seconds if full_epoch else train_rows / (n_rows / seconds),
            "epoch_projected": not full_epoch,
            "nodes_per_step": nodes_read / max(steps, 1), "edges_per_step": edges / max(steps, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _us_per_node(r: dict) -> float:
    """Step time per distinct node a step reads: flat across sizes when the nodes read per step
    explain how the epoch time grows."""
    return 1e6 * r["seconds"] / r["steps"] / r["nodes_per_step"]


def _sample_figures(r: dict) -> str:
    if not r["nodes_per_step"]:  # full propagation
        return ""
    return (f"  {r['nodes_per_step']:,.0f} distinct nodes and {r['edges_per_step']:,.0f} sampled edges per step, "
            f"{_us_per_node(r):.3f} us per node read")


def _table_sample_figures(r: dict) -> str:
    if not r["nodes_per_step"]:  # full propagation: every node, no sampling
        return " | | "
    return f"{r['nodes_per_step']:,.0f} | {r['edges_per_step']:,.0f} | {_us_per_node(r):.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000,10000000")
    p.add_argument("--variants", default="sampled:adam:0,sampled:adam:1,sampled:lazy_adam:1,full:adam:0",
                   help="comma-separated mode:optimizer:prefetch (mode sampled|full, optimizer adam|lazy_adam, "
                        "prefetch = batches built ahead in a thread, 0 = off)")
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--fanouts", default="10,10")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--order", choices=["worker", "file"], default="worker",
                   help="worker: the rows in random 1M-row blocks, shuffled within each (what a Ray Train worker "
                        "reads from the materialised rows through its shuffle buffer); file: the Parquet shards' "
                        "order, user by user (a batch of 2,048 holds about 100 users instead of about 2,000; the "
                        "figures before 2026-12-07)")
    p.add_argument("--cache", default=os.path.join(HERE, ".cache"))
    p.add_argument("--child", help=argparse.SUPPRESS)  # one variant, mode:optimizer:prefetch
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    fanouts = [int(f) for f in args.fanouts.split(",")]
    if args.child:
        mode, optimizer, prefetch = args.child.split(":")
        print(json.dumps(_child(mode, args.data, args.batch_size, args.max_seconds, fanouts, args.dim, args.layers,
                                optimizer, int(prefetch), args.order)))
        return

    from raymm.data.store import load_dataset
    from raymm.graph import TrainGraph

    variants = args.variants.split(",")
    for v in variants:
        mode, optimizer, prefetch = v.split(":")
        if mode not in ("sampled", "full") or optimizer not in ("adam", "lazy_adam") or not prefetch.isdigit():
            raise SystemExit(f"--variants: bad entry {v!r}; expected mode:optimizer:prefetch, e.g. sampled:lazy_adam:1")
    os.makedirs(args.cache, exist_ok=True)
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        print(f"size {n:,} interactions", flush=True)
        data = _dataset(n, args.cache)
        gpath = os.path.join(args.cache, os.path.basename(data) + ".graph.npz")
        if not os.path.exists(gpath):
            ds = load_dataset(data, verify_checksums=False)
            g = TrainGraph.from_interactions(*ds.read_interactions()["train"], ds.num_users, ds.num_items)
            np.savez(gpath, indptr=g.indptr, indices=g.indices, degree=g.degree)
        for v in variants:
            out = subprocess.run([sys.executable, __file__, "--child", v, "--data", data, "--batch-size",
                                  str(args.batch_size), "--max-seconds", str(args.max_seconds), "--fanouts", args.fanouts,
                                  "--dim", str(args.dim), "--layers", str(args.layers), "--order", args.order],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"{v} at {n} failed")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["size"] = n
            results.append(r)
            print(f"  {v:22s} {r['interactions_per_s']:>10,.0f} interactions/s  epoch "
                  f"{r['epoch_seconds']:>8.1f}s{' (projected)' if r['epoch_projected'] else ''}  "
                  f"peak RSS {r['peak_rss_mb']:,.0f} MB  ({r['steps']} steps in {r['seconds']:.0f}s)"
                  f"{_sample_figures(r)}", flush=True)
    print("\n| interactions | train rows | mode | optimizer | prefetch | interactions/s | epoch time (s) | "
          "worker peak RSS (MB) | distinct nodes per step | sampled edges per step | us per node read |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['size']:,} | {r['train_rows']:,} | {r['mode']} | {r['optimizer']} | {r['prefetch']} | "
              f"{r['interactions_per_s']:,.0f} | {r['epoch_seconds']:,.1f}{' (projected)' if r['epoch_projected'] else ''} "
              f"| {r['peak_rss_mb']:,.0f} | {_table_sample_figures(r)} |")


if __name__ == "__main__":
    main()
