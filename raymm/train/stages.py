"""The stage orchestrator: a method's stages, in order, each one Ray Train run with its own early
stopping, checkpoints and MLflow run, resumable and skippable once done. The train job and sweep
trials both run methods through :func:`plan_stages` and :func:`run_plan`.

A finished stage of a job writes ``<output.dir>/runs/<run_name>/<stage>.done.json`` (its checkpoint
and MLflow run); relaunching the job skips finished stages and resumes an interrupted one from its
latest checkpoint (Ray Train restores ``ray_results/<run_name>-<stage>``).
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from typing import Callable

import torch

from raymm.config import Config
from raymm.data.store import Dataset
from raymm.efficiency import count_parameters, serving_latency
from raymm.methods.base import Method, SharedData, Stage
from raymm.methods.registry import get_method
from raymm.models.registry import from_payload
from raymm.storage import is_dir, local_checkpoint, training_storage
from raymm.tracking import Tracker, learning_curve_png, write_json
from raymm.train.run import run_training
from raymm.train.state import BEST_FILE, TrainState, load_checkpoint


@dataclass
class StageResult:
    stage: str
    state: TrainState
    best_model: dict
    checkpoint_path: str
    mlflow_run_id: str | None = None

    @property
    def seconds_per_epoch(self) -> float:
        """Steady-state training time of an epoch: the median over the epochs after the first (which
        also starts the workers' data pipeline); the first one's when there is no other."""
        return _steady([h["epoch_seconds"] for h in self.state.history])

    @property
    def eval_seconds(self) -> float:
        """Validation time (full ranking, rank 0's share of the users) of an epoch, steady state as above."""
        return _steady([h["eval_seconds"] for h in self.state.history if "eval_seconds" in h])

    @property
    def peak_rss_mb(self) -> float | None:
        """Peak resident memory of the rank-0 worker process over the stage's epochs (MB; its
        ``ru_maxrss``: model, optimiser, batches, the encoder's activations ...)."""
        values = [h["worker_peak_rss_mb"] for h in self.state.history if "worker_peak_rss_mb" in h]
        return max(values) if values else None


def _steady(values: list[float]) -> float:
    return statistics.median(values[1:] or values) if values else float("nan")


@dataclass
class Plan:
    """A method's stages, each with a saved payload that stands in for it (or None: train it)."""

    method: Method
    steps: list[tuple[Stage, dict | None]]

    @property
    def final(self) -> Stage:
        return self.steps[-1][0]

    def until(self, name: str | None) -> "Plan":
        """The stages up to and including ``name`` (None: all of them): a sweep of a teacher stops there."""
        if name is None:
            return self
        names = [stage.name for stage, _ in self.steps]
        return Plan(self.method, self.steps[:names.index(name) + 1])


@dataclass
class Outcome:
    results: dict[str, StageResult] = field(default_factory=dict)  # trained (or earlier finished) stages
    payloads: dict[str, dict] = field(default_factory=dict)  # every stage's best payload, provided ones too


def plan_stages(cfg: Config, shared: SharedData, tracking_uri: str | None = None) -> Plan:
    """The stages to run; provided payloads (a saved teacher ...) are loaded and checked here,
    before anything trains."""
    method = get_method(cfg.method.name)
    return Plan(method, [(st, method.provided(st, cfg, shared, tracking_uri)) for st in method.stages(cfg)])


def run_plan(plan: Plan, shared: SharedData, train: Callable[[Stage, bool], StageResult]) -> Outcome:
    """Run the plan's stages in order: ``train(stage, is_last)`` for each one not provided; each
    stage's best payload is handed on to the next through the method."""
    out = Outcome()
    for i, (stage, provided) in enumerate(plan.steps):
        if provided is None:
            result = train(stage, i == len(plan.steps) - 1)
            out.results[stage.name] = result
            provided = result.best_model
        out.payloads[stage.name] = provided
        plan.method.after_stage(stage, provided, shared)
    return out


def run_dir_for(cfg: Config, run_name: str) -> str:
    """``<output.dir>/runs/<run_name>`` (not created here: nothing is written before input is checked)."""
    return os.path.join(os.path.abspath(cfg.output.dir), "runs", run_name)


def run_stage(cfg: Config, dataset: Dataset, shared: SharedData, spec: Stage, parent: Tracker, run_name: str,
              child_run: bool = True) -> StageResult:
    """Train ``spec``, or return its earlier result (a job's stage runner).

    With ``child_run`` the stage logs to its own MLflow child run of ``parent`` (finished or marked
    failed here); otherwise straight into ``parent``.
    """
    stage = spec.name
    run_dir = run_dir_for(cfg, run_name)
    marker = os.path.join(run_dir, f"{stage}.done.json")
    if os.path.exists(marker):
        done = json.loads(open(marker).read())
        if is_dir(done["checkpoint"]):
            print(f"[raymm] {stage}: already trained ({done['checkpoint']}), not retrained", flush=True)
            with local_checkpoint(done["checkpoint"]) as d:
                state, _, _, best = load_checkpoint(d)
            return StageResult(stage, state, best, done["checkpoint"], done["mlflow_run_id"])
    tracker = parent.child(stage, run_name) if child_run else parent
    try:
        result = _train_stage(cfg, dataset, shared, spec, tracker, run_name, run_dir)
    except BaseException:
        if child_run:
            tracker.finish("FAILED")
        raise
    if child_run:
        tracker.finish()
    write_json({"checkpoint": result.checkpoint_path, "mlflow_run_id": tracker.run_id}, marker)
    return result


def _train_stage(cfg, dataset, shared, spec: Stage, tracker: Tracker, run_name: str, run_dir: str) -> StageResult:
    stage = spec.name
    os.makedirs(run_dir, exist_ok=True)
    outcome = run_training(cfg, dataset, training_storage(cfg), f"{run_name}-{stage}", spec, shared,
                           log_fn=tracker.epoch_logger())
    state = outcome.state
    tracker.log_metrics(state.best_val, prefix="best_val_")
    if state.best_test:
        tracker.log_metrics(state.best_test, prefix="test_")
    tracker.log_metrics({"best_epoch": state.best_epoch + 1, "epochs_run": state.next_epoch})
    tracker.log_artifact(learning_curve_png(state.history, os.path.join(run_dir, f"{stage}_learning_curve.png"),
                                            cfg.eval.select_metric, spec.task.loss_label(cfg)))
    best_copy = os.path.join(run_dir, f"{stage}_{BEST_FILE}")
    torch.save(outcome.best_model, best_copy)
    tracker.log_artifact(best_copy)
    return StageResult(stage, state, outcome.best_model, outcome.checkpoint_path, tracker.run_id)


def efficiency_report(cfg: Config, shared: SharedData, outcome: Outcome, final: str) -> dict:
    """Parameter counts, s/epoch and serving latency of each model the method trained or used
    (CPU, this process): the teacher (when there is one) and the served model."""
    graph = shared.graph
    report = {}
    roles = [("teacher", "teacher")] if "teacher" in outcome.payloads and final != "teacher" else []
    roles.append(("student" if roles else "model", final))
    for role, stage in roles:
        model = from_payload(outcome.payloads[stage], shared.features, stage)
        prompt = getattr(model, "prompt", None)
        result = outcome.results.get(stage)
        latency = None
        if hasattr(model, "full_embeddings"):  # the graph family's served tables; sequential: not measured yet
            latency = serving_latency(model, graph.normalized_adjacency(normalization=model.normalization), graph)
        report[role] = {"parameters": count_parameters(model, exclude_prefix="prompt."),
                        "prompt_parameters": count_parameters(prompt) if prompt is not None else 0,
                        "seconds_per_epoch": result.seconds_per_epoch if result else None,
                        "eval_seconds": result.eval_seconds if result else None,
                        "peak_rss_mb": result.peak_rss_mb if result else None,
                        "latency": latency}
    return report


def format_report(report: dict) -> str:
    latency = next(iter(report.values()))["latency"]
    what = f"top-20 over all items for {latency['users']} users, median of 5, " if latency else ""
    lines = [f"[raymm] efficiency ({what}this process's CPU):"]
    for role in ("teacher", "student", "model"):
        r = report.get(role)
        if not r:
            continue
        params = f"{r['parameters']:,} parameters"
        if r.get("prompt_parameters"):
            params += f" (+ {r['prompt_parameters']:,} prompt)"
        epoch = "-" if r["seconds_per_epoch"] is None else (f"{r['seconds_per_epoch']:.2f} s/epoch, validation "
                                                            f"{r['eval_seconds']:.2f} s (steady state)")
        lat = r["latency"]
        serving = (f"; serving from weights {lat['from_weights_s'] * 1000:.1f} ms, from embedding tables "
                   f"{lat['from_tables_s'] * 1000:.1f} ms") if lat else ""
        memory = f", worker peak RSS {r['peak_rss_mb']:,.0f} MB" if r.get("peak_rss_mb") is not None else ""
        lines.append(f"  {role}: {params}; training {epoch}{memory}{serving}")
    return "\n".join(lines)


def flat_report(report: dict) -> dict[str, float]:
    out = {}
    for role, r in report.items():
        out[f"{role}_parameters"] = r["parameters"]
        if r.get("prompt_parameters"):
            out["prompt_parameters"] = r["prompt_parameters"]
        if r["seconds_per_epoch"] is not None:
            out[f"{role}_seconds_per_epoch"] = r["seconds_per_epoch"]
            if r["eval_seconds"] == r["eval_seconds"]:  # not NaN (no evaluation)
                out[f"{role}_eval_seconds"] = r["eval_seconds"]
        if r.get("peak_rss_mb") is not None:
            out[f"{role}_worker_peak_rss_mb"] = r["peak_rss_mb"]
        if r["latency"]:
            out[f"{role}_serving_from_weights_ms"] = r["latency"]["from_weights_s"] * 1000
            out[f"{role}_serving_from_tables_ms"] = r["latency"]["from_tables_s"] * 1000
    return out
