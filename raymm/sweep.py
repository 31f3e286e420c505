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
from raymm.errors import InputError
from raymm.storage import join
from raymm.tracking import metric_key
from raymm.tuning import (SweepConfig, param_space, run_trial, sweep_metric, swept_stage, trial_checkpoint,
                          trial_config)


@dataclass
class SweepOutcome:
    table: pd.DataFrame  # one row per trial: searched values, best val metric, epochs, status
    champion_trial: str
    champion_config: Config
    champion_checkpoint: str  # of the swept stage (the method's last, the served model, unless sweep.stage)
    metric: str  # the selection metric's Tune name


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
    max_t = swept_stage(sweep, base).epochs
    scheduler = (ASHAScheduler(time_attr="epochs_done", max_t=max_t, grace_period=sweep.scheduler.grace_period,
                               reduction_factor=sweep.scheduler.reduction_factor)
                 if sweep.scheduler.type == "asha" else FIFOScheduler())
    return tune.Tuner(
        trainable,
        param_space=param_space(sweep),
        tune_config=tune.TuneConfig(metric=sweep_metric(base), mode="max", search_alg=search, scheduler=scheduler,
                                    num_samples=sweep.search.num_samples,
                                    max_concurrent_trials=sweep.resources.max_concurrent_trials),
        run_config=tune.RunConfig(
            name=sweep.name, storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=sweep.resources.max_failures),
            callbacks=[_trial_logger(tracking_uri, experiment, parent_run_id, sweep.name),
                       placement_group_reaper()]),
    )


def _trial_logger(tracking_uri: str, experiment: str, parent_run_id: str, sweep_name: str):
    """Tune's MLflowLoggerCallback (one child run per trial under the sweep's parent run) that, when a
    sweep is restored, re-attaches each trial to the child run it already has instead of opening a
    second one: the callback keeps its trial -> run map only in memory."""
    from mlflow.tracking import MlflowClient
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    # only plain values in the closure: Tune pickles its callbacks with the run config
    experiment_id = MlflowClient(tracking_uri).get_run(parent_run_id).info.experiment_id

    class ResumableMLflowLogger(MLflowLoggerCallback):
        def log_trial_start(self, trial):
            if trial not in self._trial_runs:
                client = MlflowClient(self.tracking_uri)
                found = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}' and "
                                                            f"tags.`raymm.trial_id` = '{trial.trial_id}'")
                if found:
                    self._trial_runs[trial] = found[0].info.run_id
                    client.update_run(found[0].info.run_id, status="RUNNING")
            self.tags = {**self.tags, "raymm.trial_id": trial.trial_id}
            super().log_trial_start(trial)

        def log_trial_end(self, trial, failed: bool = False):
            # A trial whose actor never started has no run: Ray's callback raises KeyError there, and
            # that ends the whole sweep instead of that one trial.
            if trial in self._trial_runs:
                super().log_trial_end(trial, failed)

    return ResumableMLflowLogger(tracking_uri=tracking_uri, experiment_name=experiment,
                                 tags={"mlflow.parentRunId": parent_run_id, "raymm.sweep": sweep_name})


def placement_group_reaper(grace_s: float = 30.0, every_s: float = 10.0):
    """A Tune callback that removes placement groups this sweep leaked.

    With Ray 2.60 (Train V2 inside Tune), a trial that Tune stops early (ASHA) can leave its Train
    worker group's placement group reserved: the controller stops its PlacementGroupCleaner before
    the trial process is killed, and nothing removes the group. Each leak
    holds the trial's worker CPUs for the rest of the sweep, until Ray Data has no CPU left and the
    next trial waits forever.
    Seen here: 2 of 9 trials leaked 1 CPU each on a 4-CPU local instance, and trial 10 hung.

    Removed: placement groups created by this job (the sweep's driver), CREATED, and with no actor
    in them that is alive or still starting for ``grace_s``. A leaked group holds only dead actors.
    A starting actor counts as using its group: on a loaded 2-core machine a trial's process took
    over 30 s to start, and removing its group then failed the trial before it ran (seen with two
    sweeps of 2 concurrent trials each). Other jobs' placement groups are never touched. Needs
    Ray's state API (the dashboard); without it this does nothing.
    """
    import time

    import ray
    from ray.tune import Callback

    class PlacementGroupReaper(Callback):
        def __init__(self):
            self.suspects: dict[str, float] = {}
            self.last = 0.0

        def on_step_end(self, iteration, trials, **info):
            now = time.monotonic()
            if now - self.last < every_s:
                return
            self.last = now
            from ray._raylet import PlacementGroupID
            from ray.util.placement_group import PlacementGroup
            from ray.util.state import list_actors, list_placement_groups

            try:
                ctx = ray.get_runtime_context()
                job, address = ctx.get_job_id(), ctx.gcs_address  # explicit: several Ray instances may share the machine
                groups = list_placement_groups(address=address, detail=True, filters=[("state", "=", "CREATED")],
                                               limit=10_000)
                actors = list_actors(address=address, detail=True, filters=[("state", "!=", "DEAD")], limit=10_000)
            except Exception:  # noqa: BLE001 - the state API is optional (no dashboard), or answered partially: skip
                return
            used = {a.placement_group_id for a in actors}
            empty = {g.placement_group_id for g in groups if g.creator_job_id == job and g.placement_group_id not in used}
            self.suspects = {pg: self.suspects.get(pg, now) for pg in empty}
            for pg, since in list(self.suspects.items()):
                if now - since >= grace_s:
                    ray.util.remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(pg)))
                    del self.suspects[pg]
                    print(f"[raymm] released placement group {pg} left behind by a stopped trial", flush=True)

    return PlacementGroupReaper()


def tiebreak_metric(cfg: Config) -> str:
    """The Tune name of the metric that orders trials tied on the selection metric: NDCG at the same
    K (Recall@K when NDCG selects). Small validation sets tie often (two trials that hit the same
    number of held-out items); without it the champion among them would be arbitrary."""
    name, k = cfg.eval.select_metric.split("@")
    return metric_key(f"val_{'recall' if name == 'ndcg' else 'ndcg'}@{k}")


def summarize(sweep: SweepConfig, results, storage: str) -> SweepOutcome:
    """Per-trial table (best validation value over its epochs, and the tie-break metric at that epoch)
    and the champion, by validation only: the best value, then the tie-break metric, then the trial id."""
    base = trial_config(sweep, {})
    metric, tie = sweep_metric(base), tiebreak_metric(base)
    rows = []
    for r in results:
        if r.metrics is None or r.path is None:
            continue
        history = r.metrics_dataframe
        best = second = float("nan")
        if history is not None and metric in history and history[metric].notna().any():
            at_best = history.loc[history[metric].idxmax()]  # the first epoch that reached it: the trial's best
            best, second = float(at_best[metric]), float(at_best.get(tie, float("nan")))
        trial_id = r.metrics.get("trial_id")
        row = {"trial_id": trial_id, metric: best, tie: second,
               "epochs": int(history["epochs_done"].max()) if history is not None and len(history) else 0,
               "status": "error" if r.error else "ok"}
        row.update({k: r.config.get(k) for k in sweep.space})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values([metric, tie, "trial_id"], ascending=[False, False, True],
                                           na_position="last", kind="mergesort").reset_index(drop=True) \
        if rows else pd.DataFrame()
    if table.empty or np.isnan(table.loc[0, metric]):
        errors = [r.error for r in results if r.error is not None]
        cause = ""
        if errors:  # the real cause, not Tune's summary: the innermost error's last line
            inner = errors[0]
            while getattr(inner, "cause", None) is not None or inner.__cause__ is not None:
                inner = getattr(inner, "cause", None) or inner.__cause__
            cause = f"; {len(errors)} trial(s) failed, the first with: {str(inner).strip().splitlines()[-1]}"
            if isinstance(inner, InputError):  # bad input (a config that diverges ...): one line, exit 2
                raise InputError(f"sweep {sweep.name}: no trial reported {metric}{cause}")
        raise RuntimeError(f"sweep {sweep.name}: no trial reported {metric}{cause}")
    champion = table.iloc[0]
    # numpy scalars from the table back to Python values (the config is strict: numpy.bool_ is no bool)
    cfg = trial_config(sweep, {k: champion[k].item() if hasattr(champion[k], "item") else champion[k]
                               for k in sweep.space})
    stage = swept_stage(sweep, cfg).name
    return SweepOutcome(table, str(champion["trial_id"]), cfg,
                        trial_checkpoint(storage, sweep, str(champion["trial_id"]), stage), metric)


def plots(table: pd.DataFrame, sweep: SweepConfig, out_dir: str, metric: str) -> list[str]:
    """PNGs: the selection metric ``metric`` against each temperature and the prompt size (when
    searched; points coloured by the first searched choice, if any), and a parallel-coordinates plot
    over all searched keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    # the first searched choice (init_from_teacher, say) colours the points: a choice often splits trials in two
    hue = next((k for k, p in sweep.space.items() if p.type in ("choice", "grid") and k in table), None)
    for key in [k for k in sweep.space if k.split(".")[-1] in ("tau_pair", "tau_list", "size", "temperature")]:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        split = hue not in (None, key)  # a choice is not coloured by itself
        groups = [(v, table[table[hue] == v]) for v in table[hue].unique()] if split else [(None, table)]
        for value, rows in groups:
            ax.scatter(rows[key].astype(float), rows[metric], label=f"{hue.split('.')[-1]}={value}" if split else None)
        if "tau" in key:
            ax.set_xscale("log")
        ax.set(xlabel=key, ylabel=f"best {metric}", title=f"{metric} vs {key.split('.')[-1]} ({len(table)} trials)")
        if split:
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{metric}_vs_{key.replace('.', '_')}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    keys = list(sweep.space)
    numeric = table[keys].apply(_as_numbers)
    span = (numeric.max() - numeric.min()).replace(0, 1)
    scaled = (numeric - numeric.min()) / span
    fig, ax = plt.subplots(figsize=(1.6 * len(keys) + 3, 4))
    cmap = plt.get_cmap("viridis")
    lo, hi = table[metric].min(), table[metric].max()
    for i, row in scaled.iterrows():
        value = table.loc[i, metric]
        ax.plot(range(len(keys)), row.values, color=cmap(0.0 if hi == lo or np.isnan(value) else (value - lo) / (hi - lo)),
                marker="o", alpha=0.8)
    ax.set_xticks(range(len(keys)), keys, rotation=20)
    ax.set(ylabel="value (scaled to [0, 1] per key)", title=f"trials coloured by {metric} (yellow = best)")
    fig.tight_layout()
    path = os.path.join(out_dir, "parallel_coordinates.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return paths + [path]


def _as_numbers(column: pd.Series) -> pd.Series:
    """A searched column as numbers for plotting: booleans 0/1, numbers as they are, anything else
    (a choice of strings) as category codes."""
    if column.dtype == bool:
        return column.astype(float)
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        return numbers.astype(float)
    return column.astype(str).astype("category").cat.codes.astype(float)


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
