"""Sequential training throughput and memory at scale (one process, CPU, no Ray): synthetic
sequential data (``raymm.data.synthetic``, ``sequential: true``) with ``--items`` items, SASRec,
KDSR or ODMT steps on the segments the Ray Train workers build from 256 streamed training rows
(sampled softmax with 100 negatives for SASRec and KDSR; ODMT's in-batch softmax). Prints, per
configuration, the training interactions per second (streamed rows per second: median of
``--steps`` steps after 3 warm-up steps, batch 256, segments of 50), the projected epoch time,
and the peak RSS growth of the training steps (what the model and the losses allocate beyond the
data), each configuration in a fresh subprocess. The data are drawn once per size and cached under
``benchmarks/.cache`` (the "generate" time then is the read-back).

    .venv/bin/python benchmarks/sequential_scale.py --interactions 1000000 --items 50000
    .venv/bin/python benchmarks/sequential_scale.py --interactions 200000 --items 10000 50000 200000   # flat in items?
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def cached_shards(syn, interactions: int, items: int, generate) -> list:
    """The synthetic interaction shards, generated once per size (benchmarks/.cache, git-ignored:
    10M sequential interactions take minutes to draw) and read back as Arrow tables."""
    import pyarrow.parquet as pq

    folder = Path(__file__).parent / ".cache" / f"seq-{interactions}-{items}"
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for n, table in enumerate(generate(syn)):
            pq.write_table(table, folder / f"part-{n:05d}.parquet")
        (folder / "done").touch()
    return [pq.read_table(f) for f in sorted(folder.glob("part-*.parquet"))]


def measure(method: str, interactions: int, items: int, steps: int) -> dict:
    import numpy as np
    import torch

    from raymm.config import build_config
    from raymm.data.synthetic import _factors, interaction_shards, modality_features
    from raymm.graph import EvalSplit, TrainGraph
    from raymm.methods.base import SharedData
    from raymm.methods.kdsr import training_pairs
    from raymm.methods.kdsr.losses import fit_codes
    from raymm.methods.odmt import item_popularity
    from raymm.methods.registry import get_method
    from raymm.sequences import SequenceData

    torch.set_num_threads(2)
    users = max(100, interactions // 40)
    loss = [] if method == "odmt" else [f"method.{method}.loss=sampled"]
    cfg = build_config({}, [f"method.name={method}", *loss, "mlflow.log_model=false",
                            f"data.synthetic.num_users={users}", f"data.synthetic.num_items={items}",
                            f"data.synthetic.num_interactions={interactions}", "data.synthetic.sequential=true",
                            "data.synthetic.split=loo", "model.embedding_dim=64"])
    syn = cfg.data.synthetic
    start = time.perf_counter()
    shards = cached_shards(syn, interactions, items, interaction_shards)
    gen_s = time.perf_counter() - start
    seq = SequenceData.from_tables(((f"shard {n}", t) for n, t in enumerate(shards)), syn.num_users, items,
                                   "synthetic")
    u, i = seq.user_of(np.arange(len(seq.items))), seq.items
    codes = seq.split
    tr = codes == 0
    feats = modality_features(syn, _factors(syn)[2])
    shared = SharedData(TrainGraph.from_interactions(u[tr], i[tr], syn.num_users, items),
                        EvalSplit.from_interactions(u[codes == 1], i[codes == 1]), None, feats, {"sequences": seq})
    opts = getattr(cfg.method, method)
    if method == "kdsr":
        shared.extras["kdsr_codes"] = {m: fit_codes(x, training_pairs(seq, opts.max_len, 20000, 0), opts.num_subspaces,
                                                    opts.num_codes, 0) for m, x in feats.items()}
    if method == "odmt":
        shared.extras["item_pop"] = item_popularity(shared.graph)
    (stage,) = get_method(method).stages(cfg)
    task = stage.task(cfg, shared)
    task.setup(0, 1, "cpu")
    task.start_epoch(0, 0)
    opt = task.optimizer(list(task.module.parameters()))
    train = seq.examples("train")
    rng = np.random.default_rng(0)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for step in range(steps + 3):
        pos = train[rng.integers(len(train), size=256)]
        batch = task.batch_from_rows({"user_id": seq.user_of(pos), "item_id": seq.items[pos]})
        t0 = time.perf_counter()
        loss, _ = task.loss(task.module, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 3:
            times.append(time.perf_counter() - t0)
    per_s = 256 / statistics.median(times)
    return {"method": method, "interactions": len(u), "items": items, "train_rows": int(tr.sum()),
            "generate_s": gen_s, "interactions_per_s": per_s, "epoch_s": tr.sum() / per_s,
            "step_rss_growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--items", type=int, nargs="+", default=[50_000])
    parser.add_argument("--methods", nargs="+", default=["sasrec", "kdsr", "odmt"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*json.loads(args.one))))
        sys.exit(0)
    print("| method | interactions | items | train interactions/s | projected epoch | step RSS growth | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for n in args.interactions:
        for items in args.items:
            for method in args.methods:
                out = subprocess.run([sys.executable, __file__, "--one", json.dumps([method, n, items, args.steps])],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(out.stderr[-2000:])
                    raise SystemExit(f"{method} at {n} / {items} failed")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"| {method} | {r['interactions']:,} | {items:,} | {r['interactions_per_s']:,.0f} | "
                      f"{r['epoch_s']:,.0f} s | {r['step_rss_growth_mb']:,.0f} MB | {r['peak_rss_mb']:,.0f} MB |",
                      flush=True)
