"""Train any method on a dataset and track it in MLflow.

    python jobs/train.py --config conf/sgfd.yaml [--config more.yaml ...] [dotted.key=value ...]
    ray job submit --working-dir . -- python jobs/train.py --config conf/promptmm.yaml

``method.name`` picks the method (``lightgcn``, ``promptmm``, ``sgfd``); its stages run in order,
each one Ray Train run, under one MLflow parent run (a child run per stage when there are several).
Relaunching the same config resumes: finished stages are skipped, an interrupted one continues
from its latest checkpoint. Relaunching an explicit ``output.run_name`` with a config that trains
something else is refused, naming the keys that differ. The served model (the last stage's best) is logged as the pyfunc
recommender of ``raymm.serving``, which ``jobs/recommend.py``, ``jobs/evaluate.py`` and
``mlflow models predict`` load.
"""

import argparse
import os
import sys
import time

import yaml

from raymm.cli import report_input_errors
from raymm.cluster import check_fit, init_ray
from raymm.config import ConfigError, load_config
from raymm.data.prepare import prepare_dataset
from raymm.models.registry import from_payload
from raymm.serving import log_served_model
from raymm.storage import check_output_dir
from raymm.tracking import Tracker, check_tracking_store, tracking_uri, ui_command, write_json
from raymm.train.run import build_shared, check_resume, run_name_for
from raymm.train.stages import (efficiency_report, flat_report, format_report, plan_stages, run_dir_for, run_plan,
                                run_stage)

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--config", action="append", default=None,
                    help="YAML config; repeat to layer files (later wins). Default: built-in defaults")
parser.add_argument("--method", default=None, help="refuse a config whose method.name is not this one")
parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2

# 1. Config, the tracking store (a server that does not answer fails the job here), run directory.
cfg = load_config(args.config, args.overrides)
if args.method and cfg.method.name != args.method:
    raise ConfigError(f"method.name is {cfg.method.name!r} but this job runs {args.method!r} (use jobs/train.py)")
check_output_dir(cfg)
check_tracking_store(tracking_uri(cfg))
run_name = run_name_for(cfg)
run_dir = run_dir_for(cfg, run_name)  # created once the input has been checked
check_resume(cfg, run_name, run_dir)  # a relaunch under the same name must train the same thing

# 2. Data (validated on load; the synthetic default is generated once and cached), what the method
#    precomputes, and its stages (a saved teacher standing in for a stage is checked here).
dataset = prepare_dataset(cfg)
print(f"[raymm] dataset {dataset.uri}: {dataset.num_users} users, {dataset.num_items} items, "
      f"splits {dataset.manifest.split_counts}, modalities {sorted(dataset.manifest.modalities)}", flush=True)
shared = build_shared(dataset, cfg)
plan = plan_stages(cfg, shared, tracking_uri(cfg))
print(f"[raymm] method {cfg.method.name}: stages {[s.name for s, p in plan.steps if p is None]}"
      + "".join(f" ({s.name}: saved)" for s, p in plan.steps if p is not None), flush=True)

# 3. Ray: the cluster of `ray job submit` (RAY_ADDRESS), else a new local one; workers that can
#    never fit it are refused here instead of waiting forever.
init_ray()
check_fit(cfg)

# 4. Tracking: a parent run for the job (resumed when the job is relaunched).
tracker = Tracker(cfg, run_name)
print(f"[raymm] MLflow run {tracker.run_id}{' (resumed)' if tracker.resumed else ''} at {tracker.uri}", flush=True)
os.makedirs(run_dir, exist_ok=True)
with open(os.path.join(run_dir, "config.yaml"), "w") as f:
    yaml.safe_dump(cfg.model_dump(), f, sort_keys=False)
tracker.log_artifact(os.path.join(run_dir, "config.yaml"))

# 5. Train, stage by stage.
started = time.time()
child_runs = len(plan.steps) > 1
try:
    outcome = run_plan(plan, shared, lambda stage, last: run_stage(cfg, dataset, shared, stage, tracker, run_name,
                                                                     child_run=child_runs))
except BaseException:
    tracker.finish("FAILED")
    raise
final = outcome.results.get(plan.final.name)

# 6. Results: the served model's metrics at its best validation epoch, efficiency, the served model.
report = efficiency_report(cfg, shared, outcome, plan.final.name)
print(format_report(report), flush=True)
results = {
    "run_name": run_name, "mlflow_run_id": tracker.run_id, "tracking_uri": tracker.uri, "dataset": dataset.uri,
    "method": cfg.method.name, "stage": final.stage, "best_epoch": final.state.best_epoch + 1,
    "epochs_run": final.state.next_epoch, "stopped_early": final.state.stopped_early, "val": final.state.best_val,
    "test": final.state.best_test, "train_seconds": time.time() - started, "checkpoint": final.checkpoint_path,
    "efficiency": report,
}
for name, r in outcome.results.items():
    if name != final.stage:
        results[name] = {"val": r.state.best_val, "test": r.state.best_test, "best_epoch": r.state.best_epoch + 1,
                         "checkpoint": r.checkpoint_path, "mlflow_run_id": r.mlflow_run_id,
                         "seconds_per_epoch": r.seconds_per_epoch, "worker_peak_rss_mb": r.peak_rss_mb}
if child_runs:
    tracker.log_metrics(final.state.best_val, prefix="best_val_")
    if final.state.best_test:
        tracker.log_metrics(final.state.best_test, prefix="test_")
tracker.log_metrics(flat_report(report))
metrics_path = write_json(results, os.path.join(run_dir, "metrics.json"))
if cfg.mlflow.log_model:
    registered = cfg.mlflow.registered_model.format(method=cfg.method.name) if cfg.mlflow.registered_model else None
    info = log_served_model(tracker.run_id, tracker.uri, "model", from_payload(final.best_model, shared.features),
                            os.path.join(run_dir, f"{final.stage}_best_model.pt"), shared.graph, 20, registered)
    results["model_uri"] = info.model_uri
    if registered:
        results["registered_model"] = f"models:/{registered}/{info.registered_model_version}"
    write_json(results, metrics_path)
tracker.log_artifact(metrics_path)
tracker.finish()

print(f"[raymm] {final.stage}: best epoch {results['best_epoch']}, val {cfg.eval.select_metric}="
      f"{final.state.best_val.get(cfg.eval.select_metric, float('nan')):.4f}")
if results.get("model_uri"):
    print(f"[raymm] served model: {results.get('registered_model', results['model_uri'])}")
print(f"[raymm] metrics: {metrics_path}")
print(f"[raymm] MLflow run id: {tracker.run_id}; see it with: {ui_command(tracker.uri)}")
sys.stdout.flush()
