"""What the quality scripts share: run the real train job once per named variant (reused when its
``metrics.json`` exists) and format figures. Runs land in ``outputs/quality/`` (MLflow store included)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "quality"


# Set from the command line by add_common_args/apply_common_args: overrides for every run of the
# invocation, and the tag that keeps their run names apart from untagged runs.
COMMON: list[str] = []
TAG = ""


def add_common_args(parser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every run (e.g. train.propagation=sampled); needs --tag")
    parser.add_argument("--tag", default="", help="suffix of every run name (a finished run is reused by name)")


def apply_common_args(args) -> None:
    global COMMON, TAG
    if args.set and not args.tag:
        raise SystemExit("--set changes the runs: give them a --tag so that finished runs are not reused")
    COMMON, TAG = list(args.set), (f"-{args.tag}" if args.tag else "")


def run(name: str, config: str, *overrides: str) -> dict:
    """``jobs/train.py --config <config> <overrides>`` as run ``name`` (2 Ray workers); its metrics.json.

    A finished run is reused only if it was trained with this config: one whose saved config differs
    (a shipped YAML changed since, say) is refused, naming the keys, as ``jobs/train.py`` refuses it."""
    name += TAG
    metrics = OUT / "runs" / name / "metrics.json"
    args = [f"output.dir={OUT}", f"output.run_name={name}", "mlflow.log_model=false", *overrides, *COMMON]
    if metrics.exists():
        from raymm.config import load_config
        from raymm.train.run import check_resume

        check_resume(load_config([str(ROOT / config)], args), name, str(metrics.parent))
    else:
        cmd = [sys.executable, "jobs/train.py", "--config", config, *args]
        print("$ " + " ".join(cmd[1:]), flush=True)
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            print(proc.stdout[-4000:])
            raise SystemExit(f"run {name} failed")
    return json.loads(metrics.read_text())


def fmt(m: dict | None, metric: str = "recall@20", other: str = "ndcg@20") -> str:
    return "-" if not m else f"{m[metric]:.4f} / {m[other]:.4f}"


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} +- {statistics.stdev(values) if len(values) > 1 else 0.0:.4f}"
