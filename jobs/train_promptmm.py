"""Train on a dataset and track it in MLflow.

    python jobs/train_promptmm.py [--config conf/default.yaml] [dotted.key=value ...]
    ray job submit --working-dir . -- python jobs/train_promptmm.py --config conf/default.yaml

``model.name: promptmm`` trains PromptMM's teacher (stage 1) and then distils the LightGCN student
(stage 2), two Ray Train runs under one parent MLflow run; ``teacher.checkpoint=<path or URI>``
starts at stage 2 from a saved teacher. ``model.name: lightgcn`` trains the student alone (BPR).
"""

import argparse
import os
import sys
import time

import yaml

from raymm.cli import report_input_errors
from raymm.cluster import init_ray
from raymm.config import load_config
from raymm.data.prepare import prepare_dataset
from raymm.pipeline import (efficiency_report, flat_report, format_report, load_teacher_payload, run_dir_for,
                            run_stage)
from raymm.tracking import Tracker, check_tracking_store, tracking_uri, ui_command, write_json
from raymm.train.run import build_shared, run_name_for

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--config", default=None, help="YAML config (default: built-in defaults)")
parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2

# 1. Config, the tracking store (a server that does not answer fails the job here), run directory.
cfg = load_config(args.config, args.overrides)
check_tracking_store(tracking_uri(cfg))
run_name = run_name_for(cfg)
run_dir = run_dir_for(cfg, run_name)  # created once the input has been checked

# 2. Data (validated on load; the synthetic default is generated once and cached), graph, features.
dataset = prepare_dataset(cfg)
print(f"[raymm] dataset {dataset.uri}: {dataset.num_users} users, {dataset.num_items} items, "
      f"splits {dataset.manifest.split_counts}, modalities {sorted(dataset.manifest.modalities)}", flush=True)
shared = build_shared(dataset, cfg)
teacher_payload = None
if cfg.model.name == "promptmm" and cfg.teacher.checkpoint:  # checked against the dataset before anything runs
    teacher_payload = load_teacher_payload(cfg.teacher.checkpoint, shared, tracking_uri(cfg))

# 3. Tracking: a parent run for the job (fails here, before training, if the store is unreachable).
tracker = Tracker(cfg, run_name)
print(f"[raymm] MLflow run {tracker.run_id}{' (resumed)' if tracker.resumed else ''} at {tracker.uri}", flush=True)
os.makedirs(run_dir, exist_ok=True)
with open(os.path.join(run_dir, "config.yaml"), "w") as f:
    yaml.safe_dump(cfg.model_dump(), f, sort_keys=False)
tracker.log_artifact(os.path.join(run_dir, "config.yaml"))

# 4. Train on Ray: the cluster of `ray job submit` (RAY_ADDRESS), else a new local one.
init_ray()
started = time.time()
teacher = None
try:
    if cfg.model.name == "promptmm":
        if teacher_payload is None:
            teacher = run_stage(cfg, dataset, shared, "teacher", tracker, run_name)
            teacher_payload = teacher.best_model
        shared.teacher = teacher_payload
        student = run_stage(cfg, dataset, shared, "student", tracker, run_name)
    else:
        student = run_stage(cfg, dataset, shared, "lightgcn", tracker, run_name, child_run=False)
except BaseException:
    tracker.finish("FAILED")
    raise

# 5. Results: the student's metrics at its best validation epoch, efficiency, the served model.
report = efficiency_report(cfg, shared, teacher, student, teacher_payload)
print(format_report(report), flush=True)
results = {
    "run_name": run_name, "mlflow_run_id": tracker.run_id, "tracking_uri": tracker.uri, "dataset": dataset.uri,
    "model": cfg.model.name, "best_epoch": student.state.best_epoch + 1, "epochs_run": student.state.next_epoch,
    "stopped_early": student.state.stopped_early, "val": student.state.best_val, "test": student.state.best_test,
    "train_seconds": time.time() - started, "checkpoint": student.checkpoint_path, "efficiency": report,
}
if teacher is not None:
    results["teacher"] = {"val": teacher.state.best_val, "test": teacher.state.best_test,
                          "best_epoch": teacher.state.best_epoch + 1, "checkpoint": teacher.checkpoint_path,
                          "mlflow_run_id": teacher.mlflow_run_id}
if cfg.model.name == "promptmm":
    tracker.log_metrics(student.state.best_val, prefix="best_val_")
    if student.state.best_test:
        tracker.log_metrics(student.state.best_test, prefix="test_")
tracker.log_metrics(flat_report(report))
metrics_path = write_json(results, os.path.join(run_dir, "metrics.json"))
if cfg.mlflow.log_model:
    from raymm.models.lightgcn import LightGCN

    model = LightGCN(**student.best_model["hparams"])
    model.load_state_dict(student.best_model["state_dict"])
    results["model_uri"] = tracker.log_model(model)
    write_json(results, metrics_path)
tracker.log_artifact(metrics_path)
tracker.finish()

print(f"[raymm] best epoch {results['best_epoch']}: val {cfg.eval.select_metric}="
      f"{student.state.best_val.get(cfg.eval.select_metric, float('nan')):.4f}")
print(f"[raymm] metrics: {metrics_path}")
print(f"[raymm] MLflow run id: {tracker.run_id}; see it with: {ui_command(tracker.uri)}")
sys.stdout.flush()
