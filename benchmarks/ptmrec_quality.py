"""PTMRec quality: the real job (``jobs/train.py``, 2 Ray workers) per variant and seed; validation
Recall@20 / NDCG@20 at the best validation epoch (selection on validation only).

    .venv/bin/python benchmarks/ptmrec_quality.py synthetic [--seeds 0 1 2] [--variants lora ...]

synthetic: ``conf/ptmrec.yaml`` (the embedded synthetic data with 8-word item texts that follow the
latent item factors). Each PTMRec run trains stage 1 (LightGCN-M on the frozen all-MiniLM-L6-v2
vectors: the frozen-encoder baseline, read from the same run) and then stage 2. Variants: ``lora``
and ``prompt`` (PTMRec with either adapter), ``nokt`` (LoRA, w/o knowledge transfer: plain BPR
tuning of the adapter).
"""

from __future__ import annotations

import argparse

from runs import add_common_args, apply_common_args, fmt, mean_sd, run

VARIANTS = {"lora": ("PTMRec-LoRA", ()), "prompt": ("PTMRec-prompt", ("method.ptmrec.peft=prompt",)),
            "nokt": ("w/o knowledge transfer (LoRA)", ("method.ptmrec.kt_item_weight=0",
                                                        "method.ptmrec.kt_user_weight=0"))}


def synthetic(seeds, variants) -> None:
    rows = {"frozen": []}
    for seed in seeds:
        for slug in variants:
            result = run(f"syn-ptmrec-{slug}-s{seed}", "conf/ptmrec.yaml", f"train.seed={seed}", *VARIANTS[slug][1])
            rows.setdefault(slug, []).append(result["val"])
            if slug == variants[0]:
                rows["frozen"].append(result["recommender"]["val"])  # stage 1: the frozen-encoder baseline
    labels = {"frozen": "frozen encoder (stage 1)", **{s: VARIANTS[s][0] for s in variants}}
    print("\nsynthetic: validation Recall@20 / NDCG@20 at the best validation epoch")
    print("| seed | " + " | ".join(labels.values()) + " |")
    print("|---|" + "---|" * len(labels))
    for i, seed in enumerate(seeds):
        print(f"| {seed} | " + " | ".join(fmt(rows[k][i]) for k in labels) + " |")
    print("| mean +- sd (Recall@20) | " + " | ".join(mean_sd([r["recall@20"] for r in rows[k]]) for k in labels) + " |")
    for k in variants:
        wins = sum(r["recall@20"] >= b["recall@20"] for b, r in zip(rows["frozen"], rows[k]))
        print(f"{labels[k]} >= frozen encoder on {wins}/{len(seeds)} seeds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["synthetic"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["lora", "prompt", "nokt"])
    add_common_args(parser)
    args = parser.parse_args()
    apply_common_args(args)
    synthetic(args.seeds, args.variants)
