"""Train raymm's model on a dataset and track it in MLflow.

    python jobs/train_promptmm.py [--config conf/default.yaml] [dotted.key=value ...]
    ray job submit --working-dir . -- python jobs/train_promptmm.py --config conf/default.yaml

In this release the model is the ID-only LightGCN (PromptMM's student) trained with BPR; the
PromptMM teacher and distillation stages slot in before and around it.
"""

import argparse
import os
import sys
import time

import ray
import ray.data

from raymm.config import load_config
from raymm.data.prepare import prepare_dataset
from raymm.tracking import Tracker, learning_curve_png, ui_command, write_json
from raymm.train.run import run_name_for, run_training, storage_path_for

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--config", default=None, help="YAML config (default: built-in defaults)")
parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
args = parser.parse_args()

# 1. Config and output directory.
cfg = load_config(args.config, args.overrides)
run_name = run_name_for(cfg)
run_dir = os.path.join(os.path.abspath(cfg.output.dir), "runs", run_name)
os.makedirs(run_dir, exist_ok=True)

# 2. Data (validated on load; the synthetic default is generated once and cached).
dataset = prepare_dataset(cfg)
print(f"[raymm] dataset {dataset.uri}: {dataset.num_users} users, {dataset.num_items} items, "
      f"splits {dataset.manifest.split_counts}", flush=True)

# 3. Tracking (fails here, before any training, if the store is unreachable).
tracker = Tracker(cfg, run_name)
print(f"[raymm] MLflow run {tracker.run_id}{' (resumed)' if tracker.resumed else ''} at {tracker.uri}", flush=True)

# 4. Train on Ray: the cluster of `ray job submit` (RAY_ADDRESS), else a new local one.
ray.init(address=os.environ.get("RAY_ADDRESS") or "local")
ray.data.DataContext.get_current().enable_progress_bars = False
started = time.time()
try:
    outcome = run_training(cfg, dataset, storage_path_for(cfg), run_name, log_fn=tracker.epoch_logger())
except BaseException:
    tracker.finish("FAILED")
    raise
state = outcome.state

# 5. Results: metrics at the best validation epoch, curve, config, model.
results = {
    "run_name": run_name, "mlflow_run_id": tracker.run_id, "tracking_uri": tracker.uri,
    "dataset": dataset.uri, "best_epoch": state.best_epoch + 1, "epochs_run": state.next_epoch,
    "stopped_early": state.stopped_early, "val": state.best_val, "test": state.best_test,
    "train_seconds": time.time() - started, "checkpoint": outcome.checkpoint_path,
}
tracker.log_metrics(state.best_val, prefix="best_val_")
if state.best_test:
    tracker.log_metrics(state.best_test, prefix="test_")
tracker.log_metrics({"best_epoch": state.best_epoch + 1})
metrics_path = write_json(results, os.path.join(run_dir, "metrics.json"))
tracker.log_artifact(metrics_path)
tracker.log_artifact(learning_curve_png(state.history, os.path.join(run_dir, "learning_curve.png"), cfg.eval.select_metric))
config_path = os.path.join(run_dir, "config.yaml")
with open(config_path, "w") as f:
    import yaml

    yaml.safe_dump(cfg.model_dump(), f, sort_keys=False)
tracker.log_artifact(config_path)
if cfg.mlflow.log_model:
    from raymm.models.lightgcn import LightGCN

    model = LightGCN(**outcome.best_model["hparams"])
    model.load_state_dict(outcome.best_model["state_dict"])
    results["model_uri"] = tracker.log_model(model)
    write_json(results, metrics_path)
tracker.finish()

print(f"[raymm] best epoch {results['best_epoch']}: val {cfg.eval.select_metric}="
      f"{state.best_val.get(cfg.eval.select_metric, float('nan')):.4f}")
print(f"[raymm] metrics: {metrics_path}")
print(f"[raymm] MLflow run id: {tracker.run_id}; see it with: {ui_command(tracker.uri)}")
sys.stdout.flush()
