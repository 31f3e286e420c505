"""A tiny Tune sweep end to end: ASHA stops weak trials, MLflow holds the parent and child runs, the
champion is registered and loads by alias, recommend output is valid, and the pyfunc model
round-trips. Slow: a killed driver resumes, and relaunching does not rerun finished trials."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from raymm.cluster import runtime_env

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


def _sweep_file(tmp_path, name="tiny", lrs=(0.05, 0.02, 1e-6, 1e-7), materialize="never"):
    sweep = {
        "name": name, "base": str(ROOT / "conf" / "promptmm.yaml"),
        "overrides": ["method.name=lightgcn", "data.synthetic.num_users=200", "data.synthetic.num_items=100",
                      "data.synthetic.num_interactions=3000", "data.synthetic.modalities={image: 8}",
                      "train.batch_size=256", "train.epochs=3", f"output.dir={tmp_path}",
                      # streamed rows (never): epochs of about a second, so the driver is killed
                      # before trial 1 passes its first checkpoint (rows read once: 0.2 s an epoch)
                      f"train.materialize={materialize}"],
        "space": {"train.lr": {"type": "grid", "values": list(lrs)}},
        "search": {"algorithm": "grid", "num_samples": 1},
        "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2},  # one rung, at epoch 2
        "registry": {"model_name": "tiny-student", "alias": "champion", "top_k": 5},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def _registered(tmp_path, trial_suffix):
    """Whether Ray Train has registered a checkpoint of that trial's run (its snapshot file exists)."""
    return bool(glob.glob(str(tmp_path / "tune" / f"tiny-*_{trial_suffix}-lightgcn" / "checkpoint_manager_snapshot.json")))


def _checkpoints(tmp_path, trial_suffix):
    """Checkpoint directories of the Train run of the trial whose id ends with ``trial_suffix``."""
    return sorted(p for p in glob.glob(str(tmp_path / "tune" / f"tiny-*_{trial_suffix}-lightgcn" / "checkpoint_*"))
                  if os.path.isdir(p))


def _launch_and_kill(args, tmp_path, until, timeout=600):
    """Start the sweep driver in its own process group and SIGKILL the group (driver and the local
    Ray it started, nothing else) as soon as ``until()`` holds."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = open(tmp_path / "killed_driver.log", "w")
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not until():
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            assert time.monotonic() < deadline, "the sweep never reached the point of interruption"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


def _run(args, tmp_path, timeout=1200):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _check_finished_sweep(tmp_path, trials=4):
    """What a finished tiny sweep leaves: every trial ok, ASHA stopped one early, the champion a trial
    that could learn, one MLflow child run per trial, the champion registered and serving valid
    recommendations by alias (pyfunc and ``jobs/recommend.py``)."""
    table = pd.read_csv(tmp_path / "sweeps" / "tiny" / "sweep_summary.csv")
    assert len(table) == trials and (table["status"] == "ok").all(), table
    assert (table["epochs"] < 3).any(), table  # ASHA stopped at least one trial early
    assert table.loc[0, "train.lr"] in (0.05, 0.02)  # the champion is a trial that could learn
    for png in ("parallel_coordinates.png",):
        assert (tmp_path / "sweeps" / "tiny" / png).exists()

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    parent = client.search_runs(experiments, "tags.`raymm.run_name` = 'sweep-tiny'")[0]
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == trials  # a restored sweep re-attaches an interrupted trial to its own run
    assert {c.info.status for c in children} == {"FINISHED"}
    assert "champion_val_recall_at_20" in parent.data.metrics

    # The champion loads by alias and recommends K unseen, in-range items per user.
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/tiny-student@champion")
    out = model.predict(pd.DataFrame({"user_id": [0, 1, 2]}), params={"k": 5})
    assert list(out.columns) == ["user_id", "rank", "item_id", "score"] and len(out) == 15
    inner = model.unwrap_python_model()
    indptr, train_items = inner.exclude
    for u, group in out.groupby("user_id"):
        assert not set(group["item_id"]) & set(train_items[indptr[u]:indptr[u + 1]].tolist())
        assert group["score"].is_monotonic_decreasing

    recs = tmp_path / "recs.parquet"
    proc = _run(["jobs/recommend.py", "--model", "models:/tiny-student@champion", "--tracking-uri", uri,
                 "--out", str(recs), "--k", "5"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pq.read_table(recs).to_pandas()
    assert df.groupby("user_id").size().eq(5).all() and df["user_id"].nunique() == inner.num_users
    assert df["item_id"].between(0, 99).all()
    keys = set(zip(df["user_id"], df["item_id"]))
    train = {(u, int(i)) for u in range(inner.num_users) for i in train_items[indptr[u]:indptr[u + 1]]}
    assert not keys & train


def test_tiny_sweep_end_to_end(tmp_path):
    # One launch to the end (training rows read once), 3 trials: the first (lr 0.05) reaches ASHA's
    # rung first, and the two that cannot learn stop there. Kill and resume: the slow test below.
    path = _sweep_file(tmp_path, lrs=(0.05, 1e-6, 1e-7), materialize="auto")
    proc = _run(["jobs/tune.py", "--config", str(path)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _check_finished_sweep(tmp_path, trials=3)


@pytest.mark.slow  # three launches of the sweep driver, about 4 minutes: CI's 20-minute budget
def test_killed_sweep_driver_resumes_and_a_finished_sweep_reruns_nothing(tmp_path):
    # Grid order with one trial at a time: trial 0 (lr 0.05) runs 3 epochs; trial 1 has one epoch
    # checkpointed before ASHA's rung at epoch 2. Kill the driver there: trial 0 is finished, trial 1 is not.
    args = ["jobs/tune.py", "--config", str(_sweep_file(tmp_path))]
    _launch_and_kill(args, tmp_path, until=lambda: _registered(tmp_path, "00001"))
    finished = _checkpoints(tmp_path, "00000")
    assert finished, "trial 0 should have finished before the driver was killed"

    proc = _run(args, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming sweep tiny" in out
    # trial 1 continued from its checkpoint (the first, or the second if it got there before the kill)
    assert re.search(r"lightgcn: resumed from checkpoint: next epoch [23]", out), out[-3000:]
    assert _checkpoints(tmp_path, "00000") == finished  # the finished trial was not run again
    _check_finished_sweep(tmp_path)

    # Relaunching the finished sweep reruns nothing.
    before = json.loads((tmp_path / "sweeps" / "tiny" / "champion.json").read_text())["trial_id"]
    proc = _run(["jobs/tune.py", "--config", str(_sweep_file(tmp_path))], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming sweep tiny" in proc.stdout + proc.stderr
    assert "lightgcn epoch" not in proc.stdout + proc.stderr
    assert json.loads((tmp_path / "sweeps" / "tiny" / "champion.json").read_text())["trial_id"] == before


def test_placement_group_reaper_releases_only_empty_groups_of_this_job():
    """The workaround for placement groups leaked by stopped trials removes a group of this job with
    no live actor in it, and leaves one that an actor is using and one whose actor is still starting."""
    import ray
    from ray.util.placement_group import placement_group, placement_group_table
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from raymm.sweep import placement_group_reaper

    ray.init(num_cpus=2, include_dashboard=True, log_to_driver=False, runtime_env=runtime_env())
    try:
        leaked = placement_group([{"CPU": 0.5}])
        busy = placement_group([{"CPU": 0.5}])
        ray.get([leaked.ready(), busy.ready()])

        @ray.remote(num_cpus=0.5)
        class Holder:
            def ping(self):
                return 1

        holder = Holder.options(scheduling_strategy=PlacementGroupSchedulingStrategy(busy)).remote()
        assert ray.get(holder.ping.remote()) == 1
        # An actor that cannot start yet (its argument is not ready): pending, like the process of a
        # trial that a loaded machine is slow to start.
        starting = placement_group([{"CPU": 0.5}])
        ray.get(starting.ready())

        @ray.remote(num_cpus=0)
        def later():
            time.sleep(120)

        @ray.remote(num_cpus=0.5)
        class Waiting:
            def __init__(self, _):
                pass

        waiting = Waiting.options(scheduling_strategy=PlacementGroupSchedulingStrategy(starting)).remote(later.remote())
        from ray.util.state import list_actors

        def state_of_waiting():  # explicit address: other Ray instances may share the machine
            listed = list_actors(address=ray.get_runtime_context().gcs_address, detail=True)
            return {a.state for a in listed if a.actor_id == waiting._actor_id.hex()}

        for _ in range(40):  # wait until the state API lists it, so that the reaper sees it
            if state_of_waiting():
                break
            time.sleep(0.25)
        assert state_of_waiting() == {"DEPENDENCIES_UNREADY"}
        reaper = placement_group_reaper(grace_s=0.0, every_s=0.0)
        for _ in range(20):  # the state API can lag behind the actor start
            reaper.on_step_end(0, [])
            if placement_group_table(leaked)["state"] == "REMOVED":
                break
            time.sleep(0.5)
        assert placement_group_table(leaked)["state"] == "REMOVED"
        assert placement_group_table(busy)["state"] == "CREATED"
        assert placement_group_table(starting)["state"] == "CREATED"
    finally:
        ray.shutdown()


@pytest.mark.slow  # a fault test, about 2 minutes: the default suite stays within CI's 20-minute budget
def test_crashed_trial_is_retried_and_the_sweep_completes(tmp_path):
    """The process of a running trial is SIGKILLed; with ``resources.max_failures: 1`` Tune retries
    the trial, whose Train run resumes from its checkpoint, and the sweep finishes."""
    path = _sweep_file(tmp_path, name="crash", lrs=(0.05, 0.02))
    sweep = yaml.safe_load(path.read_text())
    sweep["scheduler"] = {"type": "fifo"}
    sweep["resources"] = {"max_failures": 1}
    path.write_text(yaml.safe_dump(sweep))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = tmp_path / "sweep.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "jobs/tune.py", "--config", str(path)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 600
            while not glob.glob(str(tmp_path / "tune" / "crash-*_00000-lightgcn" / "checkpoint_manager_snapshot.json")):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
            trials = [p for p in psutil.Process(proc.pid).children(recursive=True)
                      if p.cmdline() and p.cmdline()[0].startswith("ray::ImplicitFunc")]
            assert len(trials) == 1, trials
            trials[0].send_signal(signal.SIGKILL)
            assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert "lightgcn: resumed from checkpoint: next epoch" in text  # the retried trial continued
    table = pd.read_csv(tmp_path / "sweeps" / "crash" / "sweep_summary.csv")
    assert len(table) == 2 and (table["status"] == "ok").all() and (table["epochs"] == 3).all(), table


def test_searched_columns_plot_as_numbers():
    from raymm.sweep import _as_numbers

    assert _as_numbers(pd.Series([True, False])).tolist() == [1.0, 0.0]
    assert _as_numbers(pd.Series([0.1, 2])).tolist() == [0.1, 2.0]
    assert _as_numbers(pd.Series(["mean", "sum", "mean"])).tolist() == [0.0, 1.0, 0.0]


def test_trials_tied_on_the_selection_metric_are_ordered_by_ndcg_then_by_id(tmp_path):
    """Two trials with the same best Recall@20 (a small validation set ties often): the champion is
    the one with the higher NDCG@20 at its best epoch, whatever order Tune lists them in; a full
    tie goes to the lower trial id. Before, the order of an unstable sort decided."""
    from types import SimpleNamespace

    from raymm.sweep import summarize
    from raymm.tuning import SweepConfig

    sweep = SweepConfig(name="tie", base=str(ROOT / "conf" / "lightgcn.yaml"),
                        space={"train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}})

    def trial(trial_id, lr, history):
        os.makedirs(tmp_path / f"tie-{trial_id}-lightgcn" / "checkpoint_1", exist_ok=True)
        frame = pd.DataFrame(history, columns=["val_recall_at_20", "val_ndcg_at_20", "epochs_done"])
        return SimpleNamespace(metrics={"trial_id": trial_id}, path=str(tmp_path), metrics_dataframe=frame,
                               error=None, config={"train.lr": lr})

    # b reaches 0.10 twice; its best epoch is the first (NDCG 0.050), not the later 0.060
    a = trial("a", 1e-3, [(0.08, 0.04, 1), (0.10, 0.055, 2)])
    b = trial("b", 2e-3, [(0.10, 0.050, 1), (0.10, 0.060, 2), (0.09, 0.07, 3)])
    c = trial("c", 3e-3, [(0.09, 0.09, 1)])
    for results in ([b, a, c], [a, c, b], [c, b, a]):
        outcome = summarize(sweep, results, str(tmp_path))
        assert outcome.champion_trial == "a"
        assert outcome.table["trial_id"].tolist() == ["a", "b", "c"]
        assert outcome.table["val_ndcg_at_20"].tolist() == [0.055, 0.050, 0.09]
    twin = trial("0", 1e-3, [(0.10, 0.055, 1)])
    assert summarize(sweep, [a, twin], str(tmp_path)).champion_trial == "0"


def test_temperature_plots_split_trials_by_the_searched_choice(tmp_path, monkeypatch):
    """Each temperature gets its own PNG, with one point series per value of the searched choice."""
    import matplotlib.pyplot as plt

    from raymm.sweep import plots
    from raymm.tuning import SweepConfig

    sweep = SweepConfig(space={"method.promptmm.distill.tau_pair": {"type": "loguniform", "low": 0.1, "high": 10},
                               "method.promptmm.distill.init_from_teacher": {"type": "choice", "values": [False, True]},
                               "train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}})
    table = pd.DataFrame({"method.promptmm.distill.tau_pair": [0.2, 1.0, 5.0],
                          "method.promptmm.distill.init_from_teacher": [True, False, True],
                          "train.lr": [1e-3, 2e-3, 3e-3], "val_recall_at_20": [0.11, 0.08, 0.10]})
    seen = []
    real_savefig = plt.Figure.savefig

    def savefig(fig, path, **kw):  # what each figure drew, as it is saved
        seen.append((os.path.basename(path), sorted(len(c.get_offsets()) for c in fig.axes[0].collections),
                     [t.get_text() for t in fig.axes[0].get_legend().get_texts()] if fig.axes[0].get_legend() else []))
        return real_savefig(fig, path, **kw)

    monkeypatch.setattr(plt.Figure, "savefig", savefig)
    paths = plots(table, sweep, str(tmp_path), "val_recall_at_20")
    assert [os.path.basename(p) for p in paths] == [
        "val_recall_at_20_vs_method_promptmm_distill_tau_pair.png", "parallel_coordinates.png"]
    assert all(os.path.getsize(p) > 0 for p in paths)
    assert seen[0] == ("val_recall_at_20_vs_method_promptmm_distill_tau_pair.png", [1, 2],
                       ["init_from_teacher=True", "init_from_teacher=False"])

    # a teacher sweep: the prompt size is the first searched choice, and its own plot is one series
    sweep = SweepConfig(space={"method.promptmm.prompt.size": {"type": "choice", "values": [8, 16]},
                               "train.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}})
    table = pd.DataFrame({"method.promptmm.prompt.size": [8, 16, 8], "train.lr": [1e-3, 2e-3, 3e-3],
                          "val_recall_at_20": [0.11, 0.08, 0.10]})
    seen.clear()
    plots(table, sweep, str(tmp_path), "val_recall_at_20")
    assert seen[0] == ("val_recall_at_20_vs_method_promptmm_prompt_size.png", [3], [])


def test_a_sweep_whose_trials_all_fail_names_the_real_cause(tmp_path):
    """Every trial diverges (lr = inf): the sweep ends with one line giving the trials' own error."""
    path = _sweep_file(tmp_path, name="diverging", lrs=(float("inf"),))
    sweep = yaml.safe_load(path.read_text())
    sweep["overrides"] += ["train.num_workers=1", "train.epochs=1"]
    sweep["scheduler"] = {"type": "fifo"}
    path.write_text(yaml.safe_dump(sweep))
    proc = _run(["jobs/tune.py", "--config", str(path)], tmp_path, timeout=900)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Ray may still stream a worker's log lines after it; the job's own line is the one error line
    errors = [line for line in proc.stderr.splitlines() if line.startswith("raymm: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    last = errors[0]
    assert last.startswith("raymm: error: sweep diverging: no trial reported val_recall_at_20; 1 trial(s) failed"), last
    assert "lightgcn diverged at epoch 1, step " in last and "the loss is nan" in last


@pytest.mark.slow  # CI budget: the sweep mechanics are in test_tiny_sweep_end_to_end, sequential serving in test_integration
def test_sequential_sweep_registers_a_champion_that_ranks_histories(tmp_path):
    """A KDSR sweep (tau searched): trials on streamed windows, selection on validation NDCG@10,
    the champion's validation metrics recomputed from its histories, the sequential recommender
    registered under the alias."""
    sweep = {
        "name": "seq", "base": str(ROOT / "conf" / "kdsr.yaml"),
        "overrides": ["data.synthetic.num_users=200", "data.synthetic.num_items=80",
                      "data.synthetic.num_interactions=3000", "data.synthetic.modalities={image: 8, text: 8}",
                      "train.batch_size=128", "train.epochs=2", "model.embedding_dim=16", "method.kdsr.max_len=8",
                      "method.kdsr.num_codes=4", "method.kdsr.code_fit_pairs=500", f"output.dir={tmp_path}"],
        "space": {"method.kdsr.tau": {"type": "grid", "values": [1.5, 3.0]}},
        "search": {"algorithm": "grid", "num_samples": 1},
        "scheduler": {"type": "fifo"},
        "registry": {"model_name": "tiny-kdsr", "alias": "champion", "top_k": 5},
    }
    path = tmp_path / "seq.yaml"
    path.write_text(yaml.safe_dump(sweep))
    proc = _run(["jobs/tune.py", "--config", str(path)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "sweeps" / "seq" / "sweep_summary.csv")
    assert len(table) == 2 and (table["status"] == "ok").all(), table
    champion = json.loads((tmp_path / "sweeps" / "seq" / "champion.json").read_text())
    best = table.loc[table["val_ndcg_at_10"].idxmax()]
    assert champion["val"]["ndcg@10"] == pytest.approx(best["val_ndcg_at_10"], abs=1e-5)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/tiny-kdsr@champion")
    out = model.predict(pd.DataFrame({"history": [[1, 2, 3]]}))
    assert len(out) == 5 and not set(out["item_id"]) & {1, 2, 3}


def test_a_trial_that_never_started_does_not_end_the_sweep_in_the_mlflow_logger(tmp_path):
    """Ray's MLflowLoggerCallback raises KeyError for a trial that failed before its actor ran (it has
    no child run), which ended a whole TikTok sweep; raymm's logger skips it."""
    from mlflow.tracking import MlflowClient

    from raymm.sweep import _trial_logger

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent = client.create_run(client.create_experiment("sweeps")).info.run_id
    logger = _trial_logger(uri, "sweeps", parent, "s")
    logger.setup()

    class NeverStarted:  # what log_trial_end reads of a trial that errored before it ran
        trial_id, config, local_path = "t0", {}, str(tmp_path)

    logger.log_trial_end(NeverStarted(), failed=True)  # Ray's own callback raises KeyError here
    assert logger._trial_runs == {}


def test_a_teacher_sweep_stops_each_trial_after_the_teacher_and_registers_it(tmp_path):
    """``stage: teacher``: PromptMM trials train stage 1 only, ASHA and the selection read the
    teacher's validation metric, and the champion teacher is saved (the file a KD sweep reuses as
    ``teacher_checkpoint``) and registered; no student is trained."""
    path = _sweep_file(tmp_path, name="teach", lrs=(0.05, 1e-7))
    sweep = yaml.safe_load(path.read_text())
    sweep["overrides"] = [o for o in sweep["overrides"] if not o.startswith(("method.name", "train.epochs"))] + [
        "method.promptmm.teacher.epochs=3", "method.promptmm.prompt.size=4", "train.epochs=50"]
    sweep["space"] = {"method.promptmm.teacher.lr": {"type": "grid", "values": [0.05, 1e-7]}}
    sweep["stage"] = "teacher"
    sweep["registry"]["model_name"] = "tiny-teacher"
    path.write_text(yaml.safe_dump(sweep))
    proc = _run(["jobs/tune.py", "--config", str(path)], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    table = pd.read_csv(tmp_path / "sweeps" / "teach" / "sweep_summary.csv")
    assert len(table) == 2 and (table["status"] == "ok").all(), table
    assert table["epochs"].max() == 3  # the teacher's epochs, not the student's 50
    assert table.loc[0, "method.promptmm.teacher.lr"] == 0.05
    assert not glob.glob(str(tmp_path / "tune" / "teach-*-student")), "a trial trained a student"
    champion = json.loads((tmp_path / "sweeps" / "teach" / "champion.json").read_text())
    assert champion["val"]["recall@20"] == pytest.approx(table.loc[0, "val_recall_at_20"], abs=1e-5)

    from raymm.model_io import load_payload

    assert load_payload(str(tmp_path / "sweeps" / "teach" / "champion_teacher.pt"))["kind"] == "promptmm_teacher"
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    recs = mlflow.pyfunc.load_model("models:/tiny-teacher@champion").predict(pd.DataFrame({"user_id": [0, 1]}))
    assert len(recs) == 10


def test_a_sweep_stage_must_be_one_of_the_methods_stages(tmp_path):
    from raymm.config import ConfigError
    from raymm.tuning import load_sweep

    path = _sweep_file(tmp_path, name="bad")
    with pytest.raises(ConfigError, match=r"stage 'teacher' is not a stage of lightgcn \(its stages: lightgcn\)"):
        load_sweep(str(path), ["stage=teacher"])
    with pytest.raises(ConfigError, match="teacher_checkpoint loads a saved one"):
        load_sweep(str(path), ["stage=teacher", "overrides=[method.name=promptmm]",
                               f"teacher_checkpoint={path}"])
