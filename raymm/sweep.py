"""Running a sweep: the Tuner (fresh or restored), its MLflow parent/child runs, the summary table
and plots, and the champion (chosen on validation; test computed for it alone; registered with an
alias)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raymm.config import Config
from raymm.data.store import Dataset
from raymm.storage import join
from raymm.tuning import METRIC, SweepConfig, param_space, run_trial, trial_checkpoint, trial_config


@dataclass
class SweepOutcome:
    table: pd.DataFrame  # one row per trial: searched values, best val metric, epochs, status
    champion_trial: str
    champion_config: Config
    champion_checkpoint: str


def build_tuner(sweep: SweepConfig, dataset: Dataset, storage: str, tracking_uri: str, experiment: str,
                parent_run_id: str):
    """A new Tuner, or the interrupted one restored from ``storage/<name>`` (finished trials are not
    rerun; unfinished ones continue, their Train runs resuming from checkpoints)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, sweep=sweep.model_dump(), dataset_uri=dataset.uri, storage=storage,
                             tracking_uri=tracking_uri),
        {"CPU": sweep.resources.trial_driver_cpus})
    # Tune saves its experiment state at most every 10 s by default; a driver killed in between would
    # forget trials that had just finished. The state is small: save it more often.
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = str(sweep.state_save_s)
    path = join(storage, sweep.name)  # restore only from this sweep's own storage path
    if tune.Tuner.can_restore(path):
        print(f"[raymm] resuming sweep {sweep.name} from {path}", flush=True)
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    if sweep.search.algorithm == "optuna":
        search = OptunaSearch(seed=sweep.search.seed)
    else:  # BasicVariantGenerator ignores TuneConfig.max_concurrent_trials: give it its own limit
        search = BasicVariantGenerator(random_state=sweep.search.seed,
                                       max_concurrent=sweep.resources.max_concurrent_trials)
    base = trial_config(sweep, {})
    max_t = base.train.epochs
    scheduler = (ASHAScheduler(time_attr="epochs_done", max_t=max_t, grace_period=sweep.scheduler.grace_period,
                               reduction_factor=sweep.scheduler.reduction_factor)
                 if sweep.scheduler.type == "asha" else FIFOScheduler())
    return tune.Tuner(
        trainable,
        param_space=param_space(sweep),
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=search, scheduler=scheduler,
                                    num_samples=sweep.search.num_samples,
                                    max_concurrent_trials=sweep.resources.max_concurrent_trials),
        run_config=tune.RunConfig(
            name=sweep.name, storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=sweep.resources.max_failures),
            callbacks=[_trial_logger(tracking_uri, experiment, parent_run_id, sweep.name)]),
    )


def _trial_logger(tracking_uri: str, experiment: str, parent_run_id: str, sweep_name: str):
    """Tune's MLflowLoggerCallback (one child run per trial under the sweep's parent run) that, when a
    sweep is restored, re-attaches each trial to the child run it already has instead of opening a
    second one: the callback keeps its trial -> run map only in memory."""
    from mlflow.tracking import MlflowClient
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class ResumableMLflowLogger(MLflowLoggerCallback):
        def log_trial_start(self, trial):
            if trial not in self._trial_runs:
                client = MlflowClient(self.tracking_uri)
                experiment_id = client.get_run(parent_run_id).info.experiment_id
                found = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}' and "
                                                            f"tags.`raymm.trial_id` = '{trial.trial_id}'")
                if found:
                    self._trial_runs[trial] = found[0].info.run_id
                    client.update_run(found[0].info.run_id, status="RUNNING")
            self.tags = {**self.tags, "raymm.trial_id": trial.trial_id}
            super().log_trial_start(trial)

    return ResumableMLflowLogger(tracking_uri=tracking_uri, experiment_name=experiment,
                                 tags={"mlflow.parentRunId": parent_run_id, "raymm.sweep": sweep_name})


def summarize(sweep: SweepConfig, results, storage: str) -> SweepOutcome:
    """Per-trial table (best validation value over its epochs) and the champion, by validation only."""
    rows = []
    for r in results:
        if r.metrics is None or r.path is None:
            continue
        history = r.metrics_dataframe
        best = float(history[METRIC].max()) if history is not None and METRIC in history else float("nan")
        trial_id = r.metrics.get("trial_id")
        row = {"trial_id": trial_id, METRIC: best,
               "epochs": int(history["epochs_done"].max()) if history is not None and len(history) else 0,
               "status": "error" if r.error else "ok"}
        row.update({k: r.config.get(k) for k in sweep.space})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values(METRIC, ascending=False, na_position="last").reset_index(drop=True)
    if table.empty or np.isnan(table.loc[0, METRIC]):
        raise RuntimeError(f"sweep {sweep.name}: no trial reported {METRIC}")
    champion = table.iloc[0]
    cfg = trial_config(sweep, {k: champion[k] for k in sweep.space})
    stage = "student" if cfg.model.name == "promptmm" else "lightgcn"
    return SweepOutcome(table, str(champion["trial_id"]), cfg,
                        trial_checkpoint(storage, sweep, str(champion["trial_id"]), stage))


def plots(table: pd.DataFrame, sweep: SweepConfig, out_dir: str) -> list[str]:
    """PNGs: the selection metric against each temperature and the prompt size (when searched), and a
    parallel-coordinates plot over all searched keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key in [k for k in sweep.space if k.split(".")[-1] in ("tau_pair", "tau_list", "size")]:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(table[key].astype(float), table[METRIC])
        if "tau" in key:
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel="best validation Recall@20", title=f"{METRIC} vs {key}")
        fig.tight_layout()
        path = os.path.join(out_dir, f"recall_vs_{key.replace('.', '_')}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    keys = list(sweep.space)
    numeric = table[keys].apply(pd.to_numeric, errors="coerce")
    span = (numeric.max() - numeric.min()).replace(0, 1)
    scaled = (numeric - numeric.min()) / span
    fig, ax = plt.subplots(figsize=(1.6 * len(keys) + 3, 4))
    cmap = plt.get_cmap("viridis")
    lo, hi = table[METRIC].min(), table[METRIC].max()
    for i, row in scaled.iterrows():
        value = table.loc[i, METRIC]
        ax.plot(range(len(keys)), row.values, color=cmap(0.0 if hi == lo or np.isnan(value) else (value - lo) / (hi - lo)),
                marker="o", alpha=0.8)
    ax.set_xticks(range(len(keys)), keys, rotation=20)
    ax.set(ylabel="value (scaled to [0, 1] per key)", title=f"trials coloured by {METRIC} (yellow = best)")
    fig.tight_layout()
    path = os.path.join(out_dir, "parallel_coordinates.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return paths + [path]


def write_summary(table: pd.DataFrame, out_dir: str) -> str:
    path = os.path.join(out_dir, "sweep_summary.csv")
    table.to_csv(path, index=False)
    return path


def champion_record(outcome: SweepOutcome, val: dict, test: dict, out_dir: str) -> str:
    path = os.path.join(out_dir, "champion.json")
    with open(path, "w") as f:
        json.dump({"trial_id": outcome.champion_trial, "checkpoint": outcome.champion_checkpoint, "val": val,
                   "test": test, "config": outcome.champion_config.model_dump()}, f, indent=2, sort_keys=True)
    return path
