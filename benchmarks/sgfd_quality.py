"""SGFD quality bars: the real job (``jobs/train.py``, 2 Ray workers) per variant; validation
Recall@20 / NDCG@20 tables (selection on validation only; test splits are for independent checks).

    .venv/bin/python benchmarks/sgfd_quality.py synthetic [--backbone lightgcn_m]   # 3 seeds x backbones x variants
    .venv/bin/python benchmarks/sgfd_quality.py tiktok        # 3 seeds: backbone, +SGFD, w/o CE, w/o KD, w/o fusion
    .venv/bin/python benchmarks/sgfd_quality.py labels        # what the synthetic labels add to the features

Up to 60 epochs with early stopping on validation (patience 10) for every variant: SGFD's extra
terms slow the first epochs, and a 40-epoch cap stopped SGFD runs while they still improved.
"backbone" is the same model trained without SGFD's terms (``w_ce=0 w_kd=0``: no teacher, no
classifier). tiktok needs ``datasets/tiktok`` (``jobs/import_dataset.py ../shared/data/tiktok
datasets/tiktok``) and uses k-means labels (``conf/sgfd_tiktok.yaml``).
"""

from __future__ import annotations

import argparse

from runs import add_common_args, apply_common_args, fmt, mean_sd, run

BACKBONE_ONLY = ("method.sgfd.w_ce=0", "method.sgfd.w_kd=0")
EPOCHS = "train.epochs=60"  # every variant may train to convergence; early stopping (patience 10) ends it
SEEDS = (0, 1, 2)


VARIANTS = [("base", "backbone alone", BACKBONE_ONLY), ("full", "+ SGFD (w_ce 0.1, w_kd 1, T 10)", ()),
            ("kd001", "+ SGFD (w_ce 0.1, w_kd 0.01, T 10)", ("method.sgfd.w_kd=0.01",))]


def synthetic(backbones=("lightgcn_m", "promptmm"), only: tuple[str, ...] = ()) -> None:
    variants = [v for v in VARIANTS if not only or v[0] in only]
    for backbone in backbones:
        res = {slug: [run(f"syn-sgfd-{backbone}-{slug}-s{seed}", "conf/sgfd.yaml", f"method.sgfd.backbone={backbone}",
                          f"train.seed={seed}", EPOCHS, *overrides)["val"] for seed in SEEDS]
               for slug, _, overrides in variants}
        print(f"\n{backbone} backbone, validation Recall@20 / NDCG@20, each at its best validation epoch")
        print("| seed | " + " | ".join(label for _, label, _ in variants) + " |")
        print("|---|" + "---|" * len(variants))
        for i, seed in enumerate(SEEDS):
            print(f"| {seed} | " + " | ".join(fmt(res[slug][i]) for slug, _, _ in variants) + " |")
        print("| mean +- sd | " + " | ".join(mean_sd([r["recall@20"] for r in res[slug]]) for slug, _, _ in variants)
              + " |")
        for slug, label, _ in variants[1:]:
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


def labels() -> None:
    """Linear probes on the synthetic default (items 0-799 fit, 800-999 held out): how much of the
    true item factors the features carry, and how well they predict the category labels."""
    import numpy as np

    from raymm.config import SyntheticConfig
    from raymm.data import synthetic

    cfg = SyntheticConfig()
    _, _, q, _ = synthetic._factors(cfg)
    x = np.concatenate(list(synthetic.modality_features(cfg, q).values()), 1)
    x = np.c_[x, np.ones(len(x))]
    y = synthetic.categories(cfg, q)
    fit = np.arange(len(x)) < 800
    w = np.linalg.lstsq(x[fit], q[fit], rcond=None)[0]
    r2 = 1 - ((q[~fit] - x[~fit] @ w) ** 2).sum() / ((q[~fit] - q[~fit].mean(0)) ** 2).sum()
    c = np.linalg.lstsq(x[fit], np.eye(cfg.num_categories)[y[fit]], rcond=None)[0]
    acc = ((x[~fit] @ c).argmax(1) == y[~fit]).mean()
    print(f"held-out R^2 of the {cfg.latent_dim}-d item factors from the features (linear): {r2:.3f}")
    print(f"held-out accuracy of a linear probe for the {cfg.num_categories} categories: {acc:.3f} "
          f"(majority class {np.bincount(y[~fit]).max() / (~fit).sum():.3f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["synthetic", "tiktok", "labels"])
    parser.add_argument("--backbone", action="append", choices=["lightgcn_m", "promptmm"],
                        help="synthetic: only these backbones (default: both)")
    parser.add_argument("--variant", action="append", choices=[v[0] for v in VARIANTS],
                        help="synthetic: only these variants (default: all)")
    add_common_args(parser)
    args = parser.parse_args()
    apply_common_args(args)
    if args.suite == "synthetic":
        synthetic(tuple(args.backbone or ("lightgcn_m", "promptmm")), tuple(args.variant or ()))
    elif args.suite == "labels":
        labels()
    else:
        tiktok()
