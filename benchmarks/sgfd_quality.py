"""SGFD quality bars: the real job (``jobs/train.py``, 2 Ray workers) per variant; validation
Recall@20 / NDCG@20 tables (selection on validation only; test splits are for independent checks).

    .venv/bin/python benchmarks/sgfd_quality.py synthetic [--backbone lightgcn_m]   # 3 seeds x backbones x variants
    .venv/bin/python benchmarks/sgfd_quality.py tiktok        # 3 seeds: backbone, +SGFD, w/o CE, w/o KD, w/o fusion

Up to 60 epochs with early stopping on validation (patience 10) for every variant: SGFD's extra
terms slow the first epochs, and a 40-epoch cap stopped SGFD runs while they still improved.
"backbone" is the same model trained without SGFD's terms (``w_ce=0 w_kd=0``: no teacher, no
classifier). tiktok needs ``datasets/tiktok`` (``jobs/import_dataset.py ../shared/data/tiktok
datasets/tiktok``) and uses k-means labels (``conf/sgfd_tiktok.yaml``).
"""

from __future__ import annotations

import argparse

from runs import fmt, mean_sd, run

BACKBONE_ONLY = ("method.sgfd.w_ce=0", "method.sgfd.w_kd=0")
EPOCHS = "train.epochs=60"  # every variant may train to convergence; early stopping (patience 10) ends it
SEEDS = (0, 1, 2)


VARIANTS = [("base", "backbone alone", BACKBONE_ONLY), ("full", "+ SGFD (w_ce 0.1, w_kd 1, T 10)", ()),
            ("kd001", "+ SGFD (w_ce 0.1, w_kd 0.01, T 10)", ("method.sgfd.w_kd=0.01",))]


def synthetic(backbones=("lightgcn_m", "promptmm")) -> None:
    for backbone in backbones:
        res = {slug: [run(f"syn-sgfd-{backbone}-{slug}-s{seed}", "conf/sgfd.yaml", f"method.sgfd.backbone={backbone}",
                          f"train.seed={seed}", EPOCHS, *overrides)["val"] for seed in SEEDS]
               for slug, _, overrides in VARIANTS}
        print(f"\n{backbone} backbone, validation Recall@20 / NDCG@20, each at its best validation epoch")
        print("| seed | " + " | ".join(label for _, label, _ in VARIANTS) + " |")
        print("|---|" + "---|" * len(VARIANTS))
        for i, seed in enumerate(SEEDS):
            print(f"| {seed} | " + " | ".join(fmt(res[slug][i]) for slug, _, _ in VARIANTS) + " |")
        print("| mean +- sd | " + " | ".join(mean_sd([r["recall@20"] for r in res[slug]]) for slug, _, _ in VARIANTS)
              + " |")
        for slug, label, _ in VARIANTS[1:]:
            wins = sum(f["recall@20"] >= b["recall@20"] for b, f in zip(res["base"], res[slug]))
            print(f"{label} >= backbone alone on {wins}/{len(SEEDS)} seeds")


def tiktok() -> None:
    variants = [("backbone alone", BACKBONE_ONLY), ("backbone + SGFD", ()), ("w/o CE", ("method.sgfd.w_ce=0",)),
                ("w/o KD", ("method.sgfd.w_kd=0",)), ("w/o fusion", ("method.sgfd.fusion=false",))]
    print("\n| variant (lightgcn_m backbone) | val Recall@20 (3 seeds) | val NDCG@20 (3 seeds) |")
    print("|---|---|---|")
    for label, overrides in variants:
        slug = label.replace(" ", "").replace("/", "").replace("+", "-")
        res = [run(f"tiktok-sgfd-{slug}-s{seed}", "conf/sgfd_tiktok.yaml", f"train.seed={seed}", *overrides)["val"]
               for seed in SEEDS]
        print(f"| {label} | {mean_sd([r['recall@20'] for r in res])} | {mean_sd([r['ndcg@20'] for r in res])} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["synthetic", "tiktok"])
    parser.add_argument("--backbone", action="append", choices=["lightgcn_m", "promptmm"],
                        help="synthetic: only these backbones (default: both)")
    args = parser.parse_args()
    if args.suite == "synthetic":
        synthetic(tuple(args.backbone or ("lightgcn_m", "promptmm")))
    else:
        tiktok()
