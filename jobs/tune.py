"""Sweep training-config keys of any method with Ray Tune, choose the champion on validation
(``eval.select_metric``), register it.

    python jobs/tune.py --config conf/tune/promptmm_synthetic.yaml [sweep.key=value ...]
    ray job submit --working-dir . -- python jobs/tune.py --config conf/tune/sgfd_synthetic.yaml

Relaunching the same sweep (same ``name``) after an interruption resumes it: finished trials are
not rerun, unfinished ones continue from their checkpoints.
"""

import argparse
import os

import torch

from raymm.cli import report_input_errors
from raymm.cluster import check_fit, init_ray
from raymm.data.prepare import prepare_dataset
from raymm.model_io import load_payload
from raymm.models.registry import from_payload
from raymm.serving import log_served_model, model_metrics
from raymm.storage import check_output_dir, tune_storage
from raymm.sweep import build_tuner, champion_record, plots, summarize, write_summary
from raymm.tracking import Tracker, check_tracking_store, tracking_uri, ui_command
from raymm.train.run import build_shared
from raymm.train.stages import plan_stages
from raymm.tuning import load_sweep, trial_checkpoint

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--config", required=True, help="sweep file (conf/tune/*.yaml)")
parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides of the sweep file")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2

# 1. Sweep and base configs (every searched key validated), tracking store, data, output directory.
sweep, base = load_sweep(args.config, args.overrides)
check_output_dir(base)
check_tracking_store(tracking_uri(base))  # a tracking server that does not answer fails the sweep here
dataset = prepare_dataset(base)
out_dir = os.path.join(os.path.abspath(base.output.dir), "sweeps", sweep.name)
os.makedirs(out_dir, exist_ok=True)
storage = tune_storage(base)  # sweep state and the trials' checkpoints: output.storage (s3:// ...) or output.dir

# 2. Ray (trials that can never fit the cluster are refused here), then the sweep's parent MLflow run
#    (resumed with the sweep); one child run per trial.
init_ray()
check_fit(base, sweep.resources.max_concurrent_trials, sweep.resources.trial_driver_cpus)
tracker = Tracker(base, f"sweep-{sweep.name}")
tracker.log_artifact(args.config)
print(f"[raymm] sweep {sweep.name}: MLflow parent run {tracker.run_id} at {tracker.uri}", flush=True)

# 3. Tune.
tuner = build_tuner(sweep, dataset, storage, tracker.uri, base.mlflow.experiment, tracker.run_id)
results = tuner.fit()

# 4. Summary table and plots; the champion by validation only.
outcome = summarize(sweep, results, storage)
print(outcome.table.to_string(index=False), flush=True)
tracker.log_artifact(write_summary(outcome.table, out_dir))
for png in plots(outcome.table, sweep, out_dir, outcome.metric):
    tracker.log_artifact(png)

# 5. The champion: validation and (for it alone) test, then the registry. The served model is the
#    swept stage's (the last unless the sweep sets `stage`); earlier stages (PromptMM's teacher) are
#    registered beside a last stage.
cfg = outcome.champion_config
shared = build_shared(dataset, cfg)
whole = plan_stages(cfg, shared, tracker.uri)
plan = whole.until(sweep.stage)
payloads = {stage.name: provided if provided is not None else load_payload(  # a local path or a URI
    outcome.champion_checkpoint if stage is plan.final else trial_checkpoint(storage, sweep, outcome.champion_trial,
                                                                            stage.name))
    for stage, provided in plan.steps}
reg = sweep.registry
extras = plan.method.served_extras(payloads) if plan.final is whole.final else {}  # a teacher sweep: the teacher alone
served = {"": payloads[plan.final.name], **extras}
for suffix, payload in served.items():
    model = from_payload(payload, shared.features, suffix or plan.final.name)
    name = f"{reg.model_name}-{suffix}" if suffix else reg.model_name
    if not suffix:
        val = model_metrics(model, shared, cfg, "val")
        test = model_metrics(model, shared, cfg, "test") if shared.test else {}
        tracker.log_metrics(val, prefix="champion_val_")
        if test:
            tracker.log_metrics(test, prefix="champion_test_")
        record = champion_record(outcome, val, test, out_dir)
        tracker.log_artifact(record)
        sel = cfg.eval.select_metric
        print(f"[raymm] champion trial {outcome.champion_trial}: val {sel}={val[sel]:.4f}"
              + (f", test {sel}={test[sel]:.4f}" if test else ""), flush=True)
    weights = os.path.join(out_dir, f"champion_{suffix or plan.final.name}.pt")
    torch.save(payload, weights)
    info = log_served_model(tracker.run_id, tracker.uri, f"champion_{suffix or plan.final.name}", model, weights,
                            shared.graph, reg.top_k, name, reg.alias, {"config": record})
    print(f"[raymm] registered models:/{name}@{reg.alias} (version {info.registered_model_version})", flush=True)
tracker.finish()
print(f"[raymm] sweep summary: {out_dir}; see it with: {ui_command(tracker.uri)}")
