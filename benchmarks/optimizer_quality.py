"""Does ``train.optimizer=lazy_adam`` keep LightGCN's validation quality? The real job
(``jobs/train.py``, 2 Ray workers), sampled propagation (where lazy Adam changes anything: with full
propagation every row is read at every step), Adam against LazyAdam, per seed; validation Recall@20 /
NDCG@20 at the best validation epoch, and each run's steady seconds per epoch.

    .venv/bin/python benchmarks/optimizer_quality.py [--seeds 0 1 2] [--data default|1m]
    .venv/bin/python benchmarks/optimizer_quality.py --data 1m --variants lazy_adam lazy_adam:5,5   # smaller fan-outs

``--variants``: ``optimizer[:fan-outs]`` columns (default ``adam lazy_adam``, with the config's fan-outs 10,10);
the first is the reference the others are counted against.

Both optimizers run every epoch (``train.patience`` = the epochs: no early stop). The synthetic
default has a plateau at about 0.19 Recall@20 (the popular items) from epoch 2 to about 11 before
the personal signal is learnt; patience 5 stops a run there by chance: with it, LazyAdam's seed 0
stopped at epoch 7 (0.1885) while Adam's small gains on the plateau kept its seed 0 going to 0.2287,
on loss curves that were equal to 3 decimals up to that epoch. Best epochs still select on validation.

``default``: the embedded synthetic data of ``conf/lightgcn.yaml`` (30 epochs). ``1m``: synthetic data of 1M
interactions drawn as ``benchmarks/bench_training.py`` draws it (50,000 users, 20,000 items),
at most 10 epochs.
"""

from __future__ import annotations

import argparse

from runs import add_common_args, apply_common_args, fmt, mean_sd, run

DATA = {"default": ("syn", (), 30),  # run-name prefix, data overrides, epochs
        "1m": ("syn1m", ("data.synthetic.num_users=50000", "data.synthetic.num_items=20000",
                         "data.synthetic.num_interactions=1000000", "data.synthetic.modalities={image: 8}"), 10)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", choices=sorted(DATA), default="default")
    parser.add_argument("--variants", nargs="+", default=["adam", "lazy_adam"], help="optimizer[:fan-outs] columns")
    add_common_args(parser)
    args = parser.parse_args()
    apply_common_args(args)
    prefix, data, epochs = DATA[args.data]
    rows: dict[str, list] = {v: [] for v in args.variants}
    for seed in args.seeds:
        for variant in rows:
            opt, _, fanouts = variant.partition(":")
            tag = f"-f{fanouts.replace(',', 'x')}" if fanouts else ""  # no tag: conf/lightgcn.yaml's fan-outs
            result = run(f"{prefix}-lightgcn-sampled-{opt}{tag}-nostop-s{seed}", "conf/lightgcn.yaml",
                         "train.propagation=sampled", f"train.optimizer={opt}", f"train.seed={seed}", *data,
                         f"train.epochs={epochs}", f"train.patience={epochs}",
                         *([f"train.fanouts=[{fanouts}]"] if fanouts else []))
            rows[variant].append((result["val"], result["efficiency"]["model"]["seconds_per_epoch"],
                                  result["best_epoch"]))  # 1-based in metrics.json
    print(f"\nLightGCN, sampled propagation, data {args.data}: validation Recall@20 / NDCG@20 (best epoch; "
          "steady s/epoch)")
    print("| seed | " + " | ".join(rows) + " |")
    print("|---|" + "---|" * len(rows))
    for i, seed in enumerate(args.seeds):
        print(f"| {seed} | " + " | ".join(f"{fmt(r[i][0])} (epoch {r[i][2]}; {r[i][1]:.2f} s)" for r in rows.values())
              + " |")
    print("| mean +- sd (Recall@20) | " + " | ".join(mean_sd([x[0]["recall@20"] for x in r]) for r in rows.values())
          + " |")
    first, *others = rows
    for other in others:
        wins = sum(b[0]["recall@20"] >= a[0]["recall@20"] for a, b in zip(rows[first], rows[other]))
        print(f"{other} >= {first} on {wins}/{len(args.seeds)} seeds")


if __name__ == "__main__":
    main()
