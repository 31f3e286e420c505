"""PromptMM quality bars: runs the real job (``jobs/train.py``, 2 Ray workers) for each
variant and prints validation Recall@20 / NDCG@20 tables. Selection is on validation only.

    .venv/bin/python benchmarks/promptmm_quality.py synthetic          # 3 seeds: LightGCN, teacher, student
    .venv/bin/python benchmarks/promptmm_quality.py tiktok             # LightGCN, teacher, student (paper, parity)
    .venv/bin/python benchmarks/promptmm_quality.py ablation           # tiktok: full, w/o prompt, w/o each KD term, w/o re-weighting
    .venv/bin/python benchmarks/promptmm_quality.py synthetic --set train.propagation=sampled --tag sampled
    .venv/bin/python benchmarks/promptmm_quality.py sizes [--data tiktok]  # students of d 16/32/64 from one d-64 teacher
    .venv/bin/python benchmarks/promptmm_quality.py freedom            # 3 seeds: LightGCN, FREEDOM alone, FREEDOM teacher, student
    .venv/bin/python benchmarks/promptmm_quality.py lattice            # the same for LATTICE
    .venv/bin/python benchmarks/promptmm_quality.py tiktok-tuned       # 3 seeds of each TikTok sweep's champion
    .venv/bin/python benchmarks/promptmm_quality.py tiktok-tuned-ablation  # 3 seeds: the tuned pair without each part
    .venv/bin/python benchmarks/promptmm_quality.py tiktok-tuned-promptmm  # 3 seeds: PromptMM's own tuned teacher, students d 64/32
    .venv/bin/python benchmarks/promptmm_quality.py tiktok-tuned-lattice   # 3 seeds: LATTICE tuned alone, its students d 64/32
    .venv/bin/python benchmarks/promptmm_quality.py tiktok-tuned-wide [--seeds 5]  # a d-128 FREEDOM teacher, its d-64 student
    .venv/bin/python benchmarks/promptmm_quality.py tiktok-propagation     # 3 seeds: the same models, full against sampled
    .venv/bin/python benchmarks/promptmm_quality.py tiktok-tuned-d128      # 3 seeds: the d-128 teacher's tuned students (d 64/32/16)
    .venv/bin/python benchmarks/promptmm_quality.py tiktok-tuned-d128-ablation  # 3 seeds: that best pair without each part
    .venv/bin/python benchmarks/promptmm_quality.py tiktok-second-look     # 3 seeds: LightGCN's and the student's 12 more trials

tiktok and ablation need ``datasets/tiktok`` (``jobs/import_dataset.py ../shared/data/tiktok
datasets/tiktok``). Runs land in ``outputs/quality/`` (MLflow store included); a finished run is
reused when the script is run again (same run name).
"""

from __future__ import annotations

import argparse
import json

from runs import OUT, ROOT, add_common_args, apply_common_args, fmt, mean_sd, run


def serving_cost(eff: dict | None) -> str:
    """``parameters | top-20 ms (users)`` cells of a run's served model, from its efficiency report."""
    role = eff and (eff.get("student") or eff.get("model"))
    if not (role and role.get("latency")):
        return "- | -"
    return f"{role['parameters']:,} | {role['latency']['from_tables_s'] * 1000:.1f} ({role['latency']['users']:,})"


def teacher_of(result: dict, stage: str = "teacher") -> str:
    """The best model a finished run saved for ``stage`` (``freedom``, ``lattice`` for a model trained
    alone): what ``method.promptmm.teacher.checkpoint`` takes."""
    return str(OUT / "runs" / result["run_name"] / f"{stage}_best_model.pt")


def synthetic() -> None:
    rows, tests = [], []
    for seed in (0, 1, 2):
        base = run(f"syn-lightgcn-s{seed}", "conf/promptmm.yaml", "method.name=lightgcn", f"train.seed={seed}")
        pm = run(f"syn-promptmm-s{seed}", "conf/promptmm.yaml", f"train.seed={seed}")
        rows.append((seed, base["val"], pm["teacher"]["val"], pm["val"]))
        tests.append((seed, base["test"], pm["teacher"]["test"], pm["test"]))
    for split, table in (("validation", rows), ("test, at each model's best validation epoch", tests)):
        print("\n| seed | LightGCN (no KD) | PromptMM teacher | distilled student |")
        print("|---|---|---|---|")
        for seed, b, t, s in table:
            print(f"| {seed} | {fmt(b)} | {fmt(t)} | {fmt(s)} |")
        print(f"({split} Recall@20 / NDCG@20)")
    wins_t = sum(t["recall@20"] > b["recall@20"] for _, b, t, _ in rows)
    wins_s = sum(s["recall@20"] > b["recall@20"] for _, b, _, s in rows)
    print(f"teacher > LightGCN on {wins_t}/3 seeds; distilled student > LightGCN on {wins_s}/3 seeds")


def tiktok() -> None:
    base = run("tiktok-lightgcn", "conf/promptmm_tiktok.yaml", "method.name=lightgcn")
    paper = run("tiktok-promptmm", "conf/promptmm_tiktok.yaml")
    parity = run("tiktok-promptmm-parity", "conf/promptmm_tiktok_parity.yaml")
    print("\n| model | val Recall@20 | val NDCG@20 |")
    print("|---|---|---|")
    for name, m in (("LightGCN alone", base["val"]), ("PromptMM teacher (paper)", paper["teacher"]["val"]),
                    ("distilled student (paper)", paper["val"]), ("PromptMM teacher (parity)", parity["teacher"]["val"]),
                    ("distilled student (parity)", parity["val"])):
        print(f"| {name} | {m['recall@20']:.4f} | {m['ndcg@20']:.4f} |")
    eff = paper["efficiency"]
    print("\nefficiency (paper run):", json.dumps(eff, indent=1))


def ablation() -> None:
    full = run("tiktok-promptmm", "conf/promptmm_tiktok.yaml")
    teacher = f"method.promptmm.teacher.checkpoint={teacher_of(full)}"
    variants = [("full", full)]
    for label, name, override in (("w/o list-wise KD", "nolist", "method.promptmm.distill.list_weight=0"),
                                  ("w/o pairwise KD", "nopair", "method.promptmm.distill.pair_weight=0"),
                                  ("w/o embedding KD", "noemb", "method.promptmm.distill.emb_weight=0"),
                                  ("w/o re-weighting", "noreweight", "method.promptmm.distill.reweight=false")):
        variants.append((label, run(f"tiktok-abl-{name}", "conf/promptmm_tiktok.yaml", teacher, override)))
    # last: it retrains the teacher without a prompt
    variants.append(("w/o prompt", run("tiktok-abl-noprompt", "conf/promptmm_tiktok.yaml", "method.promptmm.prompt.enabled=false")))
    # control: the student only initialised from the teacher, no KD term at all
    variants.append(("w/o all three KD terms (teacher init only)",
                     run("tiktok-abl-nokd", "conf/promptmm_tiktok.yaml", teacher, "method.promptmm.distill.pair_weight=0",
                         "method.promptmm.distill.list_weight=0", "method.promptmm.distill.emb_weight=0")))
    print("\n| variant (student) | val Recall@20 | val NDCG@20 |")
    print("|---|---|---|")
    for label, r in variants:
        print(f"| {label} | {r['val']['recall@20']:.4f} | {r['val']['ndcg@20']:.4f} |")


def backbone(name: str) -> None:
    """The synthetic bar for a teacher backbone (``freedom`` or ``lattice``): per seed, LightGCN
    alone, the backbone alone with the same training settings (``conf/promptmm.yaml`` with
    ``method.name=<name>``) and PromptMM with it as teacher (``conf/promptmm_freedom.yaml`` with
    ``teacher.backbone=<name>``: its stage-1 teacher and distilled student)."""
    label = {"freedom": "FREEDOM", "lattice": "LATTICE"}[name]
    rows = []
    for seed in (0, 1, 2):
        base = run(f"syn-lightgcn-s{seed}", "conf/promptmm.yaml", "method.name=lightgcn", f"train.seed={seed}")
        alone = run(f"syn-{name}-s{seed}", "conf/promptmm.yaml", f"method.name={name}", f"train.seed={seed}")
        pm = run(f"syn-promptmm-{name}-s{seed}", "conf/promptmm_freedom.yaml", f"method.promptmm.teacher.backbone={name}",
                 f"train.seed={seed}")
        rows.append((seed, base["val"], alone["val"], pm["teacher"]["val"], pm["val"]))
    print(f"\n| seed | LightGCN (no KD) | {label} alone | {label} teacher (stage 1) | distilled student |")
    print("|---|---|---|---|---|")
    for seed, *ms in rows:
        print(f"| {seed} | " + " | ".join(fmt(m) for m in ms) + " |")
    print("| mean +- sd (Recall@20) | " + " | ".join(mean_sd([r[i]["recall@20"] for r in rows]) for i in range(1, 5))
          + " |")
    print("(validation Recall@20 / NDCG@20)")
    for i, what in ((2, f"{label} alone"), (3, f"{label} teacher"), (4, "distilled student")):
        print(f"{what} > LightGCN on {sum(r[i]['recall@20'] > r[1]['recall@20'] for r in rows)}/3 seeds")
    print(f"student >= its teacher on {sum(r[4]['recall@20'] >= r[3]['recall@20'] for r in rows)}/3 seeds")


def sizes(data: str) -> None:
    """Quality against student size: per seed, one PromptMM teacher of d_T = 64 (trained with its
    d-64 student), distilled again into students of d = 16 and 32 (a learned projection serves the
    embedding KD); each beside LightGCN alone at the same d. Serving cost: the served model's
    top-20 latency for 1,000 random users (or all, if fewer) from its embedding tables (this process's CPU)
    and its parameters."""
    conf, prefix = (("conf/promptmm.yaml", "syn") if data == "synthetic" else ("conf/promptmm_tiktok.yaml", "tiktok"))
    rows = {}
    for seed in (0, 1, 2):
        full = run(f"{prefix}-size-promptmm-d64-s{seed}", conf, f"train.seed={seed}", "model.embedding_dim=64",
                   "method.promptmm.teacher.embedding_dim=64")
        teacher = f"method.promptmm.teacher.checkpoint={teacher_of(full)}"
        rows.setdefault(("teacher", 64), []).append((full["teacher"]["val"], None))
        for d in (16, 32, 64):
            student = full if d == 64 else run(f"{prefix}-size-promptmm-d{d}-s{seed}", conf, f"train.seed={seed}",
                                               f"model.embedding_dim={d}", teacher)
            alone = run(f"{prefix}-size-lightgcn-d{d}-s{seed}", conf, "method.name=lightgcn", f"train.seed={seed}",
                        f"model.embedding_dim={d}")
            rows.setdefault(("student", d), []).append((student["val"], student["efficiency"]))
            rows.setdefault(("lightgcn", d), []).append((alone["val"], alone["efficiency"]))
    print(f"\n{data}: validation Recall@20 (mean +- sd over seeds 0-2), serving cost of the served model")
    print("| model | d | Recall@20 | NDCG@20 | parameters | top-20 from tables (ms; users) |")
    print("|---|---|---|---|---|---|")
    for (kind, d), values in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"| {kind} | {d} | {mean_sd([v['recall@20'] for v, _ in values])} | "
              f"{mean_sd([v['ndcg@20'] for v, _ in values])} | {serving_cost(values[0][1])} |")


LIGHTGCN_TUNED, FREEDOM_TUNED = "conf/lightgcn_tiktok_tuned.yaml", "conf/freedom_tiktok_tuned.yaml"
LIGHTGCN_HIGH_REG = "conf/lightgcn_tiktok_tuned_high_reg.yaml"  # the best of LightGCN's 48 + 12 trials
STUDENT_SECOND_LOOK = "conf/promptmm_freedom_d128_full_tiktok_tuned.yaml"  # the student's 12 more trials
FREEDOM_SECOND_LOOK = "conf/freedom_d128_full_tiktok_tuned.yaml"  # the d-128 teacher's 12 more trials (full)
STUDENT_TUNED = "conf/promptmm_freedom_tiktok_tuned.yaml"
STUDENT_D128_TUNED = "conf/promptmm_freedom_d128_tiktok_tuned.yaml"  # its teacher: FREEDOM at d 128
PROMPTMM_TUNED = "conf/promptmm_tiktok_tuned.yaml"
LATTICE_TUNED, LATTICE_STUDENT_TUNED = "conf/lattice_tiktok_tuned.yaml", "conf/promptmm_lattice_tiktok_tuned.yaml"


def require(*configs: str) -> None:
    """Stop, naming the first of ``configs`` (a sweep's champion) that is not in the checkout."""
    for config in configs:
        if not (ROOT / config).exists():
            raise SystemExit(f"{config} is not committed yet (its sweep has not finished)")


def propagated(propagation: str) -> tuple[str, list[str]]:
    """(run-name suffix, overrides) of a TikTok run trained with ``propagation``: ``auto`` (sampled
    blocks on TikTok; the runs of the earlier suites, no suffix) or ``full`` (full-graph)."""
    return ("-full", ["train.propagation=full"]) if propagation == "full" else ("", [])


def tuned_baseline(seed: int, propagation: str = "auto") -> dict:
    """LightGCN alone with its TikTok sweep's champion settings, on ``seed``."""
    tail, prop = propagated(propagation)
    return run(f"tiktok-tuned-lightgcn{tail}-s{seed}", LIGHTGCN_TUNED, f"train.seed={seed}", *prop)


def wide_freedom(seed: int, propagation: str = "auto") -> dict:
    """FREEDOM alone at d 128 with its d-64 sweep's champion settings, on ``seed``."""
    tail, prop = propagated(propagation)
    return run(f"tiktok-tuned-freedom-d128{tail}-s{seed}", FREEDOM_TUNED, f"train.seed={seed}",
               "model.embedding_dim=128", *prop)


def wide_runs(seed: int, propagation: str = "auto") -> tuple[dict, dict, dict]:
    """On ``seed``: LightGCN alone at d 128 (its d-64 champion's settings), FREEDOM alone at d 128
    (:func:`wide_freedom`) and that FREEDOM's d-64 student (``conf/promptmm_freedom_tiktok_tuned.yaml``),
    all three trained with ``propagation``."""
    tail, prop = propagated(propagation)
    lightgcn = run(f"tiktok-tuned-lightgcn-d128{tail}-s{seed}", LIGHTGCN_TUNED, f"train.seed={seed}",
                   "model.embedding_dim=128", *prop)
    freedom = wide_freedom(seed, propagation)
    student = run(f"tiktok-tuned-freedom-d128{tail}-student-d64-s{seed}", STUDENT_TUNED, f"train.seed={seed}",
                  "model.embedding_dim=64", f"method.promptmm.teacher.checkpoint={teacher_of(freedom, 'freedom')}",
                  *prop)
    return lightgcn, freedom, student


def d128_student(seed: int, teacher: dict, teacher_mode: str, student_mode: str = "sampled", d: int = 64,
                 name: str | None = None) -> dict:
    """The student of ``conf/promptmm_freedom_d128_tiktok_tuned.yaml`` (d ``d``, trained with
    ``student_mode`` propagation) distilled from ``teacher``, a FREEDOM run trained ``teacher_mode``,
    on ``seed``; run ``name``, by default ``tiktok-tuned-d128-<teacher_mode>-student-d<d>-<student_mode>-s<seed>``."""
    return run(name or f"tiktok-tuned-d128-{teacher_mode}-student-d{d}-{student_mode}-s{seed}", STUDENT_D128_TUNED,
               f"train.seed={seed}", f"method.promptmm.teacher.checkpoint={teacher_of(teacher, 'freedom')}",
               f"train.propagation={student_mode}", *([] if d == 64 else [f"model.embedding_dim={d}"]))


def tuned_teacher(seed: int) -> tuple[dict, str]:
    """FREEDOM alone with its sweep's champion settings on ``seed``: (its run, the
    ``teacher.checkpoint`` override that makes it the teacher of that seed's students)."""
    alone = run(f"tiktok-tuned-freedom-s{seed}", FREEDOM_TUNED, f"train.seed={seed}")
    return alone, f"method.promptmm.teacher.checkpoint={teacher_of(alone, 'freedom')}"


def print_seed_table(rows: dict[str, list[dict]], first: str) -> None:
    """One row per model: each seed's validation Recall@20 / NDCG@20, the means, and the mean
    Recall@20 against the "LightGCN alone" row's; ``first`` heads the label column."""
    base = [m["recall@20"] for m in rows["LightGCN alone"]]
    seeds = len(base)
    print(f"\n| {first} | " + " | ".join(f"seed {s}" for s in range(seeds)) + " | mean +- sd (Recall@20) | NDCG@20 | "
          "x LightGCN (means) |")
    print("|---" * (seeds + 4) + "|")
    for label, ms in rows.items():
        r = [m["recall@20"] for m in ms]
        print(f"| {label} | " + " | ".join(fmt(m) for m in ms) + f" | {mean_sd(r)} | "
              f"{mean_sd([m['ndcg@20'] for m in ms])} | {sum(r) / sum(base):.3f} |")
    print("(validation Recall@20 / NDCG@20 at each run's best validation epoch)")


def print_cost_table(cost: dict[str, dict]) -> None:
    """The serving cost of each row's served model, from seed 0's efficiency report."""
    print("\nServing cost of the served model (seed 0's run): parameters, and top-20 over all items for 1,000 "
          "random users from its embedding tables (this machine's CPU, median of 5)")
    print("| model | parameters | top-20 from tables (ms; users) |")
    print("|---|---|---|")
    for label, eff in cost.items():
        print(f"| {label} | {serving_cost(eff)} |")


def tiktok_tuned() -> None:
    """Issue 13's TikTok table: each model with its sweep's champion settings (48 trials each, chosen
    on seed 0's validation; ``conf/*_tiktok_tuned.yaml``) retrained on seeds 0-2, each against
    LightGCN alone tuned with the same budget. The FREEDOM teacher trained on seed s is the teacher
    of the students on seed s (d 64, 32 and 16; the serving cost of each follows the table). Rows
    whose tuned config is not committed yet (their sweep has not finished) are left out, and the
    script says so."""
    rows: dict[str, list[dict]] = {}
    cost: dict[str, dict] = {}
    for seed in (0, 1, 2):
        base = tuned_baseline(seed)
        rows.setdefault("LightGCN alone", []).append(base["val"])
        cost.setdefault("LightGCN alone", base["efficiency"])
        if not (ROOT / FREEDOM_TUNED).exists():
            continue
        alone, teacher = tuned_teacher(seed)
        rows.setdefault("FREEDOM alone (teacher)", []).append(alone["val"])
        cost.setdefault("FREEDOM alone (teacher)", alone["efficiency"])
        if not (ROOT / STUDENT_TUNED).exists():
            continue
        for d in (64, 32, 16):
            student = run(f"tiktok-tuned-freedom-student-d{d}-s{seed}", STUDENT_TUNED, f"train.seed={seed}",
                          f"model.embedding_dim={d}", teacher)
            rows.setdefault(f"FREEDOM -> PromptMM student, d {d}", []).append(student["val"])
            cost.setdefault(f"FREEDOM -> PromptMM student, d {d}", student["efficiency"])
    for missing in (FREEDOM_TUNED, STUDENT_TUNED):
        if not (ROOT / missing).exists():
            print(f"{missing} is not committed yet (its sweep has not finished): its rows are left out")
    print_seed_table(rows, "model")
    print_cost_table(cost)


TUNED_ABLATIONS = (  # (row label, run-name slug, overrides): the parts of a tuned pair switched off in turn
    ("w/o pairwise KD", "abl-no-pairwise-KD", ("method.promptmm.distill.pair_weight=0",)),
    ("w/o list-wise KD", "abl-no-list-wise-KD", ("method.promptmm.distill.list_weight=0",)),
    ("w/o embedding KD", "abl-no-embedding-KD", ("method.promptmm.distill.emb_weight=0",)),
    ("w/o re-weighting", "abl-no-re-weighting", ("method.promptmm.distill.reweight=false",)),
    ("w/o init from the teacher", "abl-no-init-from-the-teacher", ("method.promptmm.distill.init_from_teacher=false",)),
    # the teacher's embeddings as the start, then BPR alone: what the three KD losses add to the warm start
    ("w/o all three KD losses (init only)", "abl-init-only",
     ("method.promptmm.distill.pair_weight=0", "method.promptmm.distill.list_weight=0",
      "method.promptmm.distill.emb_weight=0")))


def ablation_variants(config: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """The rows of :data:`TUNED_ABLATIONS` that change ``config``: a part the champion already
    leaves off is no ablation."""
    from raymm.config import load_config

    champion = load_config([str(ROOT / config)])
    return [(label, slug, o) for label, slug, o in TUNED_ABLATIONS
            if load_config([str(ROOT / config)], list(o)) != champion]


def ablate(rows: dict[str, list[dict]], config: str, full: str, prefix: str, seed: int, *overrides: str) -> None:
    """Append to ``rows`` the student of ``config`` + ``overrides`` on ``seed`` (run ``full``, the
    "full" row) and each of :func:`ablation_variants` (run ``<prefix>-<slug>-s<seed>``)."""
    rows.setdefault("full", []).append(run(full, config, f"train.seed={seed}", *overrides)["val"])
    for label, slug, parts in ablation_variants(config):
        rows.setdefault(label, []).append(run(f"{prefix}-{slug}-s{seed}", config, f"train.seed={seed}",
                                              *overrides, *parts)["val"])


def tiktok_tuned_ablation() -> None:
    """The ablations of issue 13's first tuned pair on TikTok: the tuned FREEDOM teacher of seed s
    (the run of ``tiktok-tuned``) into the d-64 student of ``conf/promptmm_freedom_tiktok_tuned.yaml``,
    with each part switched off in turn; seeds 0-2, each beside LightGCN alone (tuned)."""
    require(STUDENT_TUNED)
    rows: dict[str, list[dict]] = {}
    for seed in (0, 1, 2):
        rows.setdefault("LightGCN alone", []).append(tuned_baseline(seed)["val"])
        alone, teacher = tuned_teacher(seed)
        rows.setdefault("FREEDOM alone (teacher)", []).append(alone["val"])
        ablate(rows, STUDENT_TUNED, f"tiktok-tuned-freedom-student-d64-s{seed}", "tiktok-tuned", seed,
               "model.embedding_dim=64", teacher)
    print_seed_table(rows, "student variant")


def tiktok_tuned_d128_ablation() -> None:
    """The ablations of issue 13's best pair on TikTok: seed s's d-128 FREEDOM trained full (the run of
    ``tiktok-propagation``) into the d-64 student of ``conf/promptmm_freedom_d128_tiktok_tuned.yaml``
    trained sampled (the best row of ``tiktok-tuned-d128``), with each part switched off in turn;
    seeds 0-2, each beside LightGCN alone (tuned, d 64, sampled and full)."""
    require(STUDENT_D128_TUNED)
    rows: dict[str, list[dict]] = {}
    for seed in (0, 1, 2):
        rows.setdefault("LightGCN alone", []).append(tuned_baseline(seed)["val"])
        rows.setdefault("LightGCN alone, full", []).append(tuned_baseline(seed, "full")["val"])
        teacher = wide_freedom(seed, "full")
        rows.setdefault("FREEDOM d 128 alone, full (teacher)", []).append(teacher["val"])
        ablate(rows, STUDENT_D128_TUNED, f"tiktok-tuned-d128-full-student-d64-sampled-s{seed}", "tiktok-tuned-d128",
               seed, f"method.promptmm.teacher.checkpoint={teacher_of(teacher, 'freedom')}", "train.propagation=sampled")
    print_seed_table(rows, "student variant")


def tiktok_tuned_promptmm() -> None:
    """PromptMM's own teacher with its TikTok sweep's champion settings
    (``conf/tune/promptmm_teacher_tiktok.yaml``, 48 trials on seed 0's validation), retrained on
    seeds 0-2 with its d-64 student (one job: both stages), then the same saved teacher into a d-32
    student; each seed beside LightGCN alone (tuned, the runs of ``tiktok-tuned``)."""
    require(PROMPTMM_TUNED)
    rows: dict[str, list[dict]] = {}
    cost: dict[str, dict] = {}
    for seed in (0, 1, 2):
        base = tuned_baseline(seed)
        rows.setdefault("LightGCN alone", []).append(base["val"])
        pair = run(f"tiktok-tuned-promptmm-s{seed}", PROMPTMM_TUNED, f"train.seed={seed}")
        rows.setdefault("PromptMM teacher (tuned)", []).append(pair["teacher"]["val"])
        rows.setdefault("PromptMM teacher -> student, d 64", []).append(pair["val"])
        cost.setdefault("PromptMM teacher -> student, d 64", pair["efficiency"])
        small = run(f"tiktok-tuned-promptmm-student-d32-s{seed}", PROMPTMM_TUNED, f"train.seed={seed}",
                    "model.embedding_dim=32", f"method.promptmm.teacher.checkpoint={teacher_of(pair)}")
        rows.setdefault("PromptMM teacher -> student, d 32", []).append(small["val"])
        cost.setdefault("PromptMM teacher -> student, d 32", small["efficiency"])
    print_seed_table(rows, "model")
    print_cost_table(cost)


def tiktok_tuned_lattice() -> None:
    """LATTICE alone with its TikTok sweep's champion settings (``conf/tune/lattice_tiktok.yaml``, 48
    trials on seed 0's validation), retrained on seeds 0-2; the LATTICE of seed s then teaches that
    seed's students of d 64 and 32 (``conf/promptmm_lattice_tiktok_tuned.yaml``: the FREEDOM KD
    sweep's settings, not searched for this teacher); each seed beside LightGCN alone (tuned, the
    runs of ``tiktok-tuned``)."""
    require(LATTICE_TUNED, LATTICE_STUDENT_TUNED)
    rows: dict[str, list[dict]] = {}
    cost: dict[str, dict] = {}
    for seed in (0, 1, 2):
        rows.setdefault("LightGCN alone", []).append(tuned_baseline(seed)["val"])
        alone = run(f"tiktok-tuned-lattice-s{seed}", LATTICE_TUNED, f"train.seed={seed}")
        rows.setdefault("LATTICE alone (teacher)", []).append(alone["val"])
        cost.setdefault("LATTICE alone (teacher)", alone["efficiency"])
        teacher = f"method.promptmm.teacher.checkpoint={teacher_of(alone, 'lattice')}"
        for d in (64, 32):
            student = run(f"tiktok-tuned-lattice-student-d{d}-s{seed}", LATTICE_STUDENT_TUNED, f"train.seed={seed}",
                          f"model.embedding_dim={d}", teacher)
            rows.setdefault(f"LATTICE -> PromptMM student, d {d}", []).append(student["val"])
            cost.setdefault(f"LATTICE -> PromptMM student, d {d}", student["efficiency"])
    print_seed_table(rows, "model")
    print_cost_table(cost)


def tiktok_tuned_wide(seeds: int = 3) -> None:
    """A wider teacher: the tuned FREEDOM (``conf/freedom_tiktok_tuned.yaml``, its settings searched
    at d 64) trained at d 128 on seeds 0-2, and its d-64 student (``conf/promptmm_freedom_tiktok_tuned.yaml``:
    a truncated SVD of the teacher's embeddings as the start, a learned projection for the embedding
    KD). Beside them LightGCN alone (tuned) at d 64, the runs of ``tiktok-tuned``, and at d 128, so
    that the gain of the width itself shows. (The d-64 FREEDOM pair is ``tiktok-tuned``'s.)
    ``--seeds N`` runs seeds 0 to N-1 (3 by default)."""
    rows: dict[str, list[dict]] = {}
    cost: dict[str, dict] = {}
    for seed in range(seeds):
        rows.setdefault("LightGCN alone", []).append(tuned_baseline(seed)["val"])
        wide_base, wide, student = wide_runs(seed)
        rows.setdefault("LightGCN alone, d 128", []).append(wide_base["val"])
        cost.setdefault("LightGCN alone, d 128", wide_base["efficiency"])
        rows.setdefault("FREEDOM alone, d 128", []).append(wide["val"])
        cost.setdefault("FREEDOM alone, d 128", wide["efficiency"])
        rows.setdefault("FREEDOM d 128 -> student, d 64", []).append(student["val"])
        cost.setdefault("FREEDOM d 128 -> student, d 64", student["efficiency"])
    print_seed_table(rows, "model")
    print_cost_table(cost)


def tiktok_propagation() -> None:
    """Full-graph against sampled propagation on TikTok, on seeds 0-2: LightGCN alone (tuned, at d 64
    and at d 128), FREEDOM alone at d 128 (``conf/freedom_tiktok_tuned.yaml``) and that teacher's d-64 student
    (``conf/promptmm_freedom_tiktok_tuned.yaml``), each trained once with ``train.propagation=full``
    and once with ``sampled`` (what ``auto`` picks on TikTok: the sampled runs are those of
    ``tiktok-tuned`` and ``tiktok-tuned-wide``, reused). A full student learns from the full
    teacher of its seed. Seconds per epoch come from each run's ``metrics.json``."""
    rows: dict[str, list[dict]] = {}
    epochs: dict[str, list[float]] = {}

    def add(label: str, result: dict, stage: str = "model") -> None:
        rows.setdefault(label, []).append(result["val"])
        epochs.setdefault(label, []).append(result["efficiency"][stage]["seconds_per_epoch"])

    for seed in (0, 1, 2):
        for propagation, mode in (("auto", "sampled"), ("full", "full")):
            add("LightGCN alone" if mode == "sampled" else "LightGCN alone, full", tuned_baseline(seed, propagation))
            lightgcn, freedom, student = wide_runs(seed, propagation)
            add(f"LightGCN alone, d 128, {mode}", lightgcn)
            add(f"FREEDOM alone, d 128, {mode}", freedom)
            add(f"FREEDOM d 128 -> student, d 64, {mode}", student, "student")
    print_seed_table(rows, "model")
    print("\nSeconds per epoch (steady state, from metrics.json; runs of different days and loads)")
    print("| model | seed 0 | seed 1 | seed 2 |")
    print("|---|---|---|---|")
    for label, secs in epochs.items():
        print(f"| {label} | " + " | ".join(f"{x:.2f}" for x in secs) + " |")


def tiktok_tuned_d128() -> None:
    """The d-64 student with its own sweep's settings (``conf/tune/student_freedom_d128_tiktok.yaml``:
    48 trials from seed 0's sampled d-128 FREEDOM, KD settings and the student's lr and reg_weight;
    ``conf/promptmm_freedom_d128_tiktok_tuned.yaml``) on seeds 0-2, from the d-128 FREEDOM of each seed
    trained with full and with sampled propagation (the runs of ``tiktok-propagation``), the student
    itself trained with either; each seed beside LightGCN alone (tuned, d 64, both propagations). Then
    students of d 32 and 16 from the full teacher, trained sampled, with the d-64 student's settings."""
    require(STUDENT_D128_TUNED)
    rows: dict[str, list[dict]] = {}
    cost: dict[str, dict] = {}
    for seed in (0, 1, 2):
        rows.setdefault("LightGCN alone", []).append(tuned_baseline(seed)["val"])
        rows.setdefault("LightGCN alone, full", []).append(tuned_baseline(seed, "full")["val"])
        for teacher_mode, student_mode in (("full", "full"), ("full", "sampled"), ("sampled", "sampled")):
            teacher = wide_freedom(seed, "full" if teacher_mode == "full" else "auto")
            if student_mode == "full":
                rows.setdefault("FREEDOM d 128 alone, full (teacher)", []).append(teacher["val"])
            label = f"student d 64 ({student_mode}) of the {teacher_mode} FREEDOM d 128"
            student = d128_student(seed, teacher, teacher_mode, student_mode)
            rows.setdefault(label, []).append(student["val"])
            cost.setdefault(label, student["efficiency"])
        for d in (32, 16):  # smaller students of the best variant, with the d-64 student's settings
            label = f"student d {d} (sampled) of the full FREEDOM d 128"
            student = d128_student(seed, wide_freedom(seed, "full"), "full", d=d)
            rows.setdefault(label, []).append(student["val"])
            cost.setdefault(label, student["efficiency"])
    print_seed_table(rows, "model")
    print_cost_table(cost)


def tiktok_second_look() -> None:
    """The 12 more trials each for LightGCN alone and for the best pair's student, in the lr and
    reg_weight region the first sweeps did not reach (``conf/tune/lightgcn_tiktok_high_reg.yaml``,
    ``conf/tune/student_freedom_d128_full_tiktok.yaml``) and for the d-128 FREEDOM trained full
    (``conf/tune/freedom_d128_full_tiktok_high_reg.yaml``, with the first KD champion's student of
    it): each champion on seeds 0-2, beside the earlier champions (their runs reused). Rows whose
    config is not committed yet are left out."""
    require(LIGHTGCN_HIGH_REG)
    rows: dict[str, list[dict]] = {}
    cost: dict[str, dict] = {}
    for seed in (0, 1, 2):
        rows.setdefault("LightGCN alone", []).append(tuned_baseline(seed)["val"])
        for propagation in ("auto", "full"):
            tail, prop = propagated(propagation)
            label = "LightGCN alone, 60-trial champion" + (", full" if propagation == "full" else "")
            alone = run(f"tiktok-tuned-lightgcn-high-reg{tail}-s{seed}", LIGHTGCN_HIGH_REG, f"train.seed={seed}", *prop)
            rows.setdefault(label, []).append(alone["val"])
            cost.setdefault(label, alone["efficiency"])
        teacher = wide_freedom(seed, "full")
        rows.setdefault("FREEDOM d 128 alone, full (teacher)", []).append(teacher["val"])
        checkpoint = f"method.promptmm.teacher.checkpoint={teacher_of(teacher, 'freedom')}"
        first = d128_student(seed, teacher, "full")
        rows.setdefault("student d 64 (sampled), first KD sweep's champion", []).append(first["val"])
        if (ROOT / STUDENT_SECOND_LOOK).exists():
            second = run(f"tiktok-tuned-d128-full-second-look-student-d64-s{seed}", STUDENT_SECOND_LOOK,
                         f"train.seed={seed}", checkpoint)
            rows.setdefault("student d 64 (sampled), second look's champion", []).append(second["val"])
            cost.setdefault("student d 64 (sampled), second look's champion", second["efficiency"])
        if (ROOT / FREEDOM_SECOND_LOOK).exists():
            freedom = run(f"tiktok-tuned-freedom-d128-second-look-s{seed}", FREEDOM_SECOND_LOOK, f"train.seed={seed}")
            rows.setdefault("FREEDOM d 128 alone, full, second look's champion", []).append(freedom["val"])
            cost.setdefault("FREEDOM d 128 alone, full, second look's champion", freedom["efficiency"])
            student = d128_student(seed, freedom, "full",
                                   name=f"tiktok-tuned-freedom-d128-second-look-student-d64-s{seed}")
            rows.setdefault("its student d 64 (sampled), first KD sweep's champion", []).append(student["val"])
    for config in (STUDENT_SECOND_LOOK, FREEDOM_SECOND_LOOK):
        if not (ROOT / config).exists():
            print(f"{config} is not committed yet (its sweep has not finished): its rows are left out")
    print_seed_table(rows, "model")
    print_cost_table(cost)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["synthetic", "tiktok", "ablation", "sizes", "freedom", "lattice",
                                          "tiktok-tuned", "tiktok-tuned-ablation", "tiktok-tuned-promptmm",
                                          "tiktok-tuned-lattice", "tiktok-tuned-wide", "tiktok-propagation",
                                          "tiktok-tuned-d128", "tiktok-tuned-d128-ablation", "tiktok-second-look"])
    parser.add_argument("--data", choices=["synthetic", "tiktok"], default="synthetic", help="sizes: the dataset")
    parser.add_argument("--seeds", type=int, help="tiktok-tuned-wide: seeds 0 to N-1 (default 3)")
    add_common_args(parser)
    args = parser.parse_args()
    apply_common_args(args)
    if args.seeds is not None and args.suite != "tiktok-tuned-wide":
        parser.error(f"--seeds applies to tiktok-tuned-wide only, not {args.suite}")
    if args.suite == "sizes":
        sizes(args.data)
    elif args.suite in ("freedom", "lattice"):
        backbone(args.suite)
    else:
        {"synthetic": synthetic, "tiktok": tiktok, "ablation": ablation, "tiktok-tuned": tiktok_tuned,
         "tiktok-tuned-ablation": tiktok_tuned_ablation, "tiktok-tuned-promptmm": tiktok_tuned_promptmm,
         "tiktok-tuned-lattice": tiktok_tuned_lattice, "tiktok-propagation": tiktok_propagation,
         "tiktok-tuned-d128": tiktok_tuned_d128, "tiktok-tuned-d128-ablation": tiktok_tuned_d128_ablation,
         "tiktok-second-look": tiktok_second_look,
         "tiktok-tuned-wide": lambda: tiktok_tuned_wide(args.seeds or 3)}[args.suite]()
