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
