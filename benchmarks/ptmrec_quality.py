"""PTMRec quality: the real job (``jobs/train.py``; 2 Ray workers, 1 on MovieLens) per variant and
seed; validation Recall@20 / NDCG@20 at the best validation epoch (selection on validation only).
Every run trains its own stage 1; the table's frozen-encoder column is the first variant's, and the
summary also compares each variant with the stage 1 it started from (runs with sampled propagation
differ a little).

    .venv/bin/python benchmarks/ptmrec_quality.py synthetic [--seeds 0 1 2] [--variants lora ...]
    .venv/bin/python benchmarks/ptmrec_quality.py coldstart [--seeds 0 1 2] [--variants lora ...] [--fraction 0.1]
    .venv/bin/python benchmarks/ptmrec_quality.py ml100k [--seeds 0 1 2] [--variants lora prompt nokt]

synthetic: ``conf/ptmrec.yaml`` (the embedded synthetic data with 8-word item texts that follow the
latent item factors). Each PTMRec run trains stage 1 (LightGCN-M on the frozen all-MiniLM-L6-v2
vectors: the frozen-encoder baseline, read from the same run) and then stage 2. Variants: ``lora``
and ``prompt`` (PTMRec with either adapter), ``nokt`` (LoRA, w/o knowledge transfer: plain BPR
tuning of the adapter), ``lora-samelr`` (LoRA with the recommender's stage-2 learning rate at
train.lr, 0.01, as in stage 1, instead of the 0.001 that ``conf/ptmrec.yaml`` sets).

coldstart: the same data with a fraction of the items held out of every split
(:mod:`raymm.data.holdout`; one draw, the same for every seed), the same runs on it, then each
model ranks the held-out items, each embedded from its text alone, for the users who interacted
with them (their train and validation pairs; :func:`raymm.methods.ptmrec.coldstart.cold_item_metrics`):
stage 1 with the frozen encoder against stage 2 with the tuned one.

ml100k: ``conf/ptmrec_ml100k.yaml`` (``bash scripts/get_movielens.sh`` first). Every table also
gives each stage's steady seconds per epoch (stage 2's is the encoder's: its forward and backward
run in the step) and the rank-0 worker's peak RSS.
"""

from __future__ import annotations

import argparse
import statistics

from runs import OUT, ROOT, add_common_args, apply_common_args, fmt, mean_sd, run

VARIANTS = {"lora": ("PTMRec-LoRA", ()), "prompt": ("PTMRec-prompt", ("method.ptmrec.peft=prompt",)),
            "nokt": ("w/o knowledge transfer (LoRA)", ("method.ptmrec.kt_item_weight=0",
                                                        "method.ptmrec.kt_user_weight=0")),
            "lora-samelr": ("PTMRec-LoRA, stage-2 recommender lr = train.lr", ("method.ptmrec.tune_lr=null",))}


SUITES = {"synthetic": ("conf/ptmrec.yaml", "syn-ptmrec"), "coldstart": ("conf/ptmrec.yaml", "syn-ptmrec-cold"),
          "ml100k": ("conf/ptmrec_ml100k.yaml", "ml100k-ptmrec")}


def table(suite: str, seeds, variants, data: tuple[str, ...] = (), evaluate=None) -> None:
    """One run per seed and variant of ``suite``; ``evaluate(result)``, when given, gives (tuned,
    frozen) metrics in place of the runs' validation ones (the cold-start ones); ``data``: overrides
    that pick the dataset."""
    config, prefix = SUITES[suite]
    rows, cost, own = {}, {"frozen": []}, {}
    for seed in seeds:
        for slug in variants:
            result = run(f"{prefix}-{slug}-s{seed}", config, f"train.seed={seed}", *data, *VARIANTS[slug][1])
            tuned, frozen = (result["val"], result["recommender"]["val"]) if evaluate is None else evaluate(result)
            rows.setdefault(slug, []).append(tuned)
            own.setdefault(slug, []).append(frozen)  # the stage 1 this variant's stage 2 started from
            model = result["efficiency"]["model"]
            cost.setdefault(slug, []).append((model["seconds_per_epoch"], model.get("peak_rss_mb")))
            if slug == variants[0]:
                stage1 = result["recommender"]
                cost["frozen"].append((stage1.get("seconds_per_epoch"), stage1.get("worker_peak_rss_mb")))
    rows["frozen"] = own[variants[0]]  # stage 1 of the first variant's runs: the frozen-encoder baseline
    labels = {"frozen": "frozen encoder (stage 1)", **{s: VARIANTS[s][0] for s in variants}}
    what = ("validation Recall@20 / NDCG@20 at the best validation epoch" if evaluate is None else
            "held-out (cold) items ranked among themselves, embedded from text alone: Recall@20 / NDCG@20")
    print(f"\n{suite}: {what}")
    print("| seed | " + " | ".join(labels.values()) + " |")
    print("|---|" + "---|" * len(labels))
    for i, seed in enumerate(seeds):
        print(f"| {seed} | " + " | ".join(fmt(rows[k][i]) for k in labels) + " |")
    print("| mean +- sd (Recall@20) | " + " | ".join(mean_sd([r["recall@20"] for r in rows[k]]) for k in labels) + " |")
    print("| s/epoch (steady, median over seeds) | " + " | ".join(_median(c[0] for c in cost[k]) for k in labels) + " |")
    print("| worker peak RSS, MB (max over seeds) | " + " | ".join(_max(c[1] for c in cost[k]) for k in labels) + " |")
    for k in variants:
        wins = sum(r["recall@20"] >= b["recall@20"] for b, r in zip(rows["frozen"], rows[k]))
        own_wins = sum(r["recall@20"] >= b["recall@20"] for b, r in zip(own[k], rows[k]))
        print(f"{labels[k]} >= frozen encoder (the table's column) on {wins}/{len(seeds)} seeds; >= the stage 1 "
              f"it started from on {own_wins}/{len(seeds)}")
    # sampled propagation is not bit-reproducible (DGL's RNG), so each run's own stage 1 differs a little
    print("stage 1 of each variant's run (Recall@20), per seed: " + "; ".join(
        f"{seed}: " + " ".join(f"{k} {own[k][i]['recall@20']:.4f}" for k in variants) for i, seed in enumerate(seeds)))


def _median(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.1f}" if values else "-"


def _max(values) -> str:
    values = [v for v in values if v is not None]
    return f"{max(values):,.0f}" if values else "- (not recorded)"


def coldstart(seeds, variants, fraction: float) -> None:
    """:func:`table` on the data with ``fraction`` of its items held out, scored on those items."""
    import os

    from raymm.config import load_config
    from raymm.data.holdout import cold_item_ids, cold_pairs, hold_out_items
    from raymm.data.prepare import prepare_dataset
    from raymm.data.store import load_dataset
    from raymm.methods.ptmrec.coldstart import cold_item_metrics
    from raymm.model_io import load_payload
    from raymm.models.registry import from_payload
    from raymm.train.run import build_shared

    src = prepare_dataset(load_config([str(ROOT / "conf/ptmrec.yaml")], [f"output.dir={OUT}"]))
    cold = cold_item_ids(src.num_items, fraction, seed=0)
    dest = f"{src.uri}-cold{int(round(fraction * 100))}"
    if not os.path.exists(os.path.join(dest, "manifest.json")):
        hold_out_items(src, dest, cold)
    users, items = cold_pairs(src, cold)
    print(f"[coldstart] {len(cold)} of {src.num_items} items held out of {dest}; {len(users)} cold pairs "
          f"of {len(set(users.tolist()))} users", flush=True)
    data = ("data.source=path", f"data.path={dest}")
    cfg = load_config([str(ROOT / "conf/ptmrec.yaml")], [f"output.dir={OUT}", *data])
    shared = build_shared(load_dataset(dest), cfg)  # what the runs trained on: graph, frozen text vectors

    def evaluate(result):
        out = []
        for stage in ("tune", "recommender"):  # each stage's best (on validation) model
            model = from_payload(load_payload(str(OUT / "runs" / result["run_name"] / f"{stage}_best_model.pt")),
                                 shared.features)
            out.append(cold_item_metrics(model, shared.graph, users, items, cold, [20]))
        return out

    table("coldstart", seeds, variants, data, evaluate)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["lora", "prompt", "nokt"])
    parser.add_argument("--fraction", type=float, default=0.1, help="coldstart: share of the items held out")
    add_common_args(parser)
    args = parser.parse_args()
    apply_common_args(args)
    if args.suite == "coldstart":
        coldstart(args.seeds, args.variants, args.fraction)
    else:
        table(args.suite, args.seeds, args.variants)
