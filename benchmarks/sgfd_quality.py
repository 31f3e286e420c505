"""SGFD quality bars: the real job (``jobs/train.py``, 2 Ray workers) per variant; validation
Recall@20 / NDCG@20 tables (selection on validation only; test splits are for independent checks).

    .venv/bin/python benchmarks/sgfd_quality.py synthetic     # 3 seeds x {lightgcn_m, promptmm} x {backbone, +SGFD}
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


def synthetic() -> None:
    rows = []
    for backbone in ("lightgcn_m", "promptmm"):
        for seed in SEEDS:
            common = (f"method.sgfd.backbone={backbone}", f"train.seed={seed}", EPOCHS)
            base = run(f"syn-sgfd-{backbone}-base-s{seed}", "conf/sgfd.yaml", *common, *BACKBONE_ONLY)
            full = run(f"syn-sgfd-{backbone}-full-s{seed}", "conf/sgfd.yaml", *common)
            rows.append((backbone, seed, base["val"], full["val"]))
    print("\n| backbone | seed | backbone alone | backbone + SGFD | SGFD >= backbone |")
    print("|---|---|---|---|---|")
    for backbone, seed, b, f in rows:
        print(f"| {backbone} | {seed} | {fmt(b)} | {fmt(f)} | {f['recall@20'] >= b['recall@20']} |")
    print("(validation Recall@20 / NDCG@20, each at its best validation epoch)")
    for backbone in ("lightgcn_m", "promptmm"):
        mine = [r for r in rows if r[0] == backbone]
        print(f"{backbone}: backbone {mean_sd([b['recall@20'] for _, _, b, _ in mine])}, "
              f"+SGFD {mean_sd([f['recall@20'] for _, _, _, f in mine])}; "
              f"SGFD >= backbone on {sum(f['recall@20'] >= b['recall@20'] for _, _, b, f in mine)}/{len(mine)} seeds")


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
    {"synthetic": synthetic, "tiktok": tiktok}[parser.parse_args().suite]()
