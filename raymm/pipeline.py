"""Stages of a training job, each one Ray Train run with its own early stopping, checkpoints and
MLflow run, resumable and skippable once done.

A finished stage writes ``<output.dir>/runs/<run_name>/<stage>.done.json`` (its checkpoint and
MLflow run); relaunching the job skips finished stages and resumes an interrupted one from its
latest checkpoint (Ray Train restores ``ray_results/<run_name>-<stage>``).
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass

import torch

from raymm.config import Config
from raymm.data.store import Dataset
from raymm.efficiency import count_parameters, serving_latency
from raymm.errors import ModelMismatchError
from raymm.model_io import load_payload
from raymm.models.lightgcn import LightGCN
from raymm.models.promptmm import PromptMMTeacher
from raymm.storage import is_dir, local_checkpoint, training_storage
from raymm.tracking import Tracker, learning_curve_png, write_json
from raymm.train.run import run_training
from raymm.train.state import BEST_FILE, TrainState, load_checkpoint
from raymm.train.tasks import SharedData, full_adjacency


@dataclass
class StageResult:
    stage: str
    state: TrainState
    best_model: dict
    checkpoint_path: str
    mlflow_run_id: str

    @property
    def seconds_per_epoch(self) -> float:
        return statistics.mean(h["epoch_seconds"] for h in self.state.history) if self.state.history else float("nan")


def run_dir_for(cfg: Config, run_name: str) -> str:
    """``<output.dir>/runs/<run_name>`` (not created here: nothing is written before input is checked)."""
    return os.path.join(os.path.abspath(cfg.output.dir), "runs", run_name)


def run_stage(cfg: Config, dataset: Dataset, shared: SharedData, stage: str, parent: Tracker, run_name: str,
              child_run: bool = True) -> StageResult:
    """Train ``stage`` (``lightgcn``, ``teacher`` or ``student``), or return its earlier result.

    With ``child_run`` the stage logs to its own MLflow child run of ``parent`` (finished or marked
    failed here); otherwise straight into ``parent``.
    """
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
        result = _train_stage(cfg, dataset, shared, stage, tracker, run_name, run_dir)
    except BaseException:
        if child_run:
            tracker.finish("FAILED")
        raise
    if child_run:
        tracker.finish()
    write_json({"checkpoint": result.checkpoint_path, "mlflow_run_id": tracker.run_id}, marker)
    return result


def _train_stage(cfg, dataset, shared, stage, tracker: Tracker, run_name: str, run_dir: str) -> StageResult:
    os.makedirs(run_dir, exist_ok=True)
    outcome = run_training(cfg, dataset, training_storage(cfg), f"{run_name}-{stage}", log_fn=tracker.epoch_logger(),
                           shared=shared, task=stage)
    state = outcome.state
    tracker.log_metrics(state.best_val, prefix="best_val_")
    if state.best_test:
        tracker.log_metrics(state.best_test, prefix="test_")
    tracker.log_metrics({"best_epoch": state.best_epoch + 1, "epochs_run": state.next_epoch})
    tracker.log_artifact(learning_curve_png(state.history, os.path.join(run_dir, f"{stage}_learning_curve.png"),
                                            cfg.eval.select_metric))
    best_copy = os.path.join(run_dir, f"{stage}_{BEST_FILE}")
    torch.save(outcome.best_model, best_copy)
    tracker.log_artifact(best_copy)
    return StageResult(stage, state, outcome.best_model, outcome.checkpoint_path, tracker.run_id)


def load_teacher_payload(ref: str, shared: SharedData, tracking_uri: str | None = None) -> dict:
    """A saved teacher (checkpoint dir, ``best_model.pt`` file, or an MLflow artifact URI such as
    ``runs:/<run id>/teacher_best_model.pt``), checked against the dataset."""
    path = ref
    if ref.startswith(("runs:/", "models:/", "mlflow-artifacts:")):
        import mlflow.artifacts

        path = mlflow.artifacts.download_artifacts(artifact_uri=ref, tracking_uri=tracking_uri)
    payload = load_payload(path)
    if payload.get("kind") != "promptmm_teacher":
        raise ModelMismatchError(f"{ref} is not a PromptMM teacher checkpoint (kind={payload.get('kind')})")
    h = payload["hparams"]
    g = shared.graph
    dims = {m: int(x.shape[1]) for m, x in shared.features.items()}
    problems = []
    if (h["num_users"], h["num_items"]) != (g.num_users, g.num_items):
        problems.append(f"{h['num_users']} users / {h['num_items']} items vs the dataset's {g.num_users} / {g.num_items}")
    if h["feature_dims"] != dims:
        problems.append(f"modalities {h['feature_dims']} vs the dataset's {dims}")
    if problems:
        raise ModelMismatchError(f"teacher checkpoint {ref} does not match the dataset: " + "; ".join(problems))
    return payload


def efficiency_report(cfg: Config, shared: SharedData, teacher: StageResult | None, student: StageResult,
                      teacher_payload: dict | None) -> dict:
    """Parameter counts, s/epoch and serving latency of the teacher and the student (CPU, this process)."""
    graph = shared.graph
    adj = full_adjacency(graph, cfg, "cpu")  # what both stages were trained with
    report = {}
    if teacher_payload is not None:
        t = PromptMMTeacher.from_payload(teacher_payload, shared.features)
        report["teacher"] = {"parameters": count_parameters(t, exclude_prefix="prompt."),
                             "prompt_parameters": count_parameters(t.prompt) if t.prompt is not None else 0,
                             "seconds_per_epoch": teacher.seconds_per_epoch if teacher else None,
                             "latency": serving_latency(t, adj, graph)}
    s = LightGCN(**student.best_model["hparams"])
    s.load_state_dict(student.best_model["state_dict"])
    report["student"] = {"parameters": count_parameters(s), "seconds_per_epoch": student.seconds_per_epoch,
                         "latency": serving_latency(s, adj, graph)}
    return report


def format_report(report: dict) -> str:
    users = report["student"]["latency"]["users"]
    lines = [f"[raymm] efficiency (top-20 over all items for {users} users, median of 5, this process's CPU):"]
    for role in ("teacher", "student"):
        r = report.get(role)
        if not r:
            continue
        params = f"{r['parameters']:,} parameters"
        if r.get("prompt_parameters"):
            params += f" (+ {r['prompt_parameters']:,} prompt)"
        epoch = "-" if r["seconds_per_epoch"] is None else f"{r['seconds_per_epoch']:.2f} s/epoch"
        lat = r["latency"]
        lines.append(f"  {role}: {params}; training {epoch}; serving from weights "
                     f"{lat['from_weights_s'] * 1000:.1f} ms, from embedding tables {lat['from_tables_s'] * 1000:.1f} ms")
    return "\n".join(lines)


def flat_report(report: dict) -> dict[str, float]:
    out = {}
    for role, r in report.items():
        out[f"{role}_parameters"] = r["parameters"]
        if r.get("prompt_parameters"):
            out["prompt_parameters"] = r["prompt_parameters"]
        if r["seconds_per_epoch"] is not None:
            out[f"{role}_seconds_per_epoch"] = r["seconds_per_epoch"]
        out[f"{role}_serving_from_weights_ms"] = r["latency"]["from_weights_s"] * 1000
        out[f"{role}_serving_from_tables_ms"] = r["latency"]["from_tables_s"] * 1000
    return out
