import os

from mlflow.tracking import MlflowClient

from raymm.config import build_config
from raymm.tracking import Tracker


def test_new_sqlite_store_keeps_every_artifact_beside_it(tmp_path, monkeypatch):
    """MLflow's Default experiment would otherwise get an artifact location under the working
    directory, which for `ray job submit` is a temporary copy deleted when the job ends."""
    work = tmp_path / "job-working-dir"
    work.mkdir()
    monkeypatch.chdir(work)
    out = tmp_path / "outputs"
    tracker = Tracker(build_config({}, [f"output.dir={out}"]), "run")
    client = MlflowClient(tracker.uri)
    root = (out / "mlartifacts").as_uri()
    for exp in client.search_experiments():
        assert exp.artifact_location.startswith(root), (exp.name, exp.artifact_location)
    assert {e.name for e in client.search_experiments()} >= {"Default", "raymm"}
    assert not os.listdir(work)  # nothing written into the working directory


def test_the_epoch_logger_warms_up_without_writing_and_then_logs(tmp_path):
    """``warm`` (run by the rank-0 worker in a thread) only reads; the epoch's metrics land as usual."""
    tracker = Tracker(build_config({}, [f"output.dir={tmp_path}"]), "run")
    log = tracker.epoch_logger()
    log.warm()
    client = MlflowClient(tracker.uri)
    assert client.get_run(tracker.run_id).data.metrics == {}
    log({"val_recall@20": 0.25, "note": "not a number"}, 3)
    (point,) = client.get_metric_history(tracker.run_id, "val_recall_at_20")
    assert (point.value, point.step) == (0.25, 3)
