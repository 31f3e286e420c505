"""Sequential-family quality bars: the real job (``jobs/train.py``, 2 Ray workers) per method and
seed; validation NDCG@10 / HR@10 at the best validation epoch (selection on validation only; test
splits are for independent checks). History items are not masked (``eval.mask_history: false``).

    .venv/bin/python benchmarks/sequential_quality.py synthetic [--seeds 0 1 2] [--protocol full|short|quick]
    .venv/bin/python benchmarks/sequential_quality.py ml100k       # needs bash scripts/get_movielens.sh

synthetic: SASRec, KDSR and ODMT on ``conf/*.yaml`` (synthetic sequential data, leave-one-out).
``--protocol``: ``full`` (the configs as shipped), ``short`` (windows of 50, at most 30 epochs,
patience 5), ``quick`` (windows of 20, at most 20 epochs, patience 5), to fit a 2-core machine.
ml100k: SASRec, KDSR, ODMT and the ablations (KDSR w/o holistic, w/o codes, w/o asynchronous
learning; ODMT w/o online KD).
"""

from __future__ import annotations

import argparse

from runs import mean_sd, run

SYNTHETIC = [("sasrec", "SASRec", ()), ("kdsr", "KDSR", ()), ("odmt", "ODMT", ())]
ML100K = SYNTHETIC + [("kdsr", "KDSR w/o holistic", ("method.kdsr.holistic=false",)),
                      ("kdsr", "KDSR w/o codes", ("method.kdsr.codes=false",)),
                      ("kdsr", "KDSR w/o async", ("method.kdsr.slow_lr_divisor=1",)),
                      ("odmt", "ODMT w/o online KD", ("method.odmt.kd_weight=0",))]


PROTOCOLS = {"full": (), "short": ("method.METHOD.max_len=50", "train.epochs=30", "train.patience=5"),
             "quick": ("method.METHOD.max_len=20", "train.epochs=20", "train.patience=5")}


def fmt(m: dict) -> str:
    return f"{m['ndcg@10']:.4f} / {m['hit@10']:.4f}"


def table(suite: str, variants, seeds, extra: tuple[str, ...], tag: str = "") -> None:
    conf = (lambda m: f"conf/{m}.yaml") if suite == "synthetic" else (lambda m: f"conf/{m}_ml100k.yaml")
    res = {label: [] for _, label, _ in variants}
    for seed in seeds:  # seed by seed: an interrupted table has every variant at the same seeds
        for method, label, overrides in variants:
            opts = [o.replace("METHOD", method) for o in extra]
            slug = label.lower().replace(" ", "-").replace("/", "")
            res[label].append(run(f"{suite}-seq{tag}-{slug}-s{seed}", conf(method), f"train.seed={seed}", *opts,
                                  *overrides)["val"])
    print(f"\n{suite}: validation NDCG@10 / HR@10 at the best validation epoch (history not masked)")
    print("| seed | " + " | ".join(label for _, label, _ in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for i, seed in enumerate(seeds):
        print(f"| {seed} | " + " | ".join(fmt(res[label][i]) for _, label, _ in variants) + " |")
    print("| mean +- sd (NDCG@10) | " + " | ".join(mean_sd([r["ndcg@10"] for r in res[label]])
                                                  for _, label, _ in variants) + " |")
    for _, label, _ in variants[1:]:
        wins = sum(r["ndcg@10"] >= b["ndcg@10"] for b, r in zip(res["SASRec"], res[label]))
        print(f"{label} >= SASRec on {wins}/{len(seeds)} seeds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["synthetic", "ml100k"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="full")
    parser.add_argument("--methods", nargs="+", choices=["sasrec", "kdsr", "odmt"],
                        help="synthetic: only these methods (default: all three)")
    args = parser.parse_args()
    quick = PROTOCOLS[args.protocol]
    variants = SYNTHETIC if args.suite == "synthetic" else ML100K
    if args.methods:
        variants = [v for v in variants if v[0] in args.methods or v[0] == "sasrec"]  # SASRec: the reference
    table(args.suite, variants, args.seeds, quick, "" if args.protocol == "full" else f"-{args.protocol}")
