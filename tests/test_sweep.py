"""A tiny Tune sweep end to end: ASHA stops weak trials, MLflow holds the parent and child runs, the
champion is registered and loads by alias, relaunching does not rerun finished trials, recommend
output is valid, and the pyfunc model round-trips."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _sweep_file(tmp_path, name="tiny", lrs=(0.05, 0.02, 1e-6, 1e-7)):
    sweep = {
        "name": name, "base": str(ROOT / "conf" / "promptmm.yaml"),
        "overrides": ["model.name=lightgcn", "data.synthetic.num_users=200", "data.synthetic.num_items=100",
                      "data.synthetic.num_interactions=3000", "data.synthetic.modalities={image: 8}",
                      "train.batch_size=256", "train.epochs=3", f"output.dir={tmp_path}"],
        "space": {"train.lr": {"type": "grid", "values": list(lrs)}},
        "search": {"algorithm": "grid", "num_samples": 1},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "registry": {"model_name": "tiny-student", "alias": "champion", "top_k": 5},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def _run(args, tmp_path, timeout=1200):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_tiny_sweep_end_to_end(tmp_path):
    proc = _run(["jobs/tune_promptmm.py", "--config", str(_sweep_file(tmp_path))], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "sweeps" / "tiny" / "sweep_summary.csv")
    assert len(table) == 4
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
    assert len(children) == 4
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

    # Relaunching the finished sweep reruns nothing.
    before = json.loads((tmp_path / "sweeps" / "tiny" / "champion.json").read_text())["trial_id"]
    proc = _run(["jobs/tune_promptmm.py", "--config", str(_sweep_file(tmp_path))], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming sweep tiny" in proc.stdout + proc.stderr
    assert "lightgcn epoch" not in proc.stdout + proc.stderr
    assert json.loads((tmp_path / "sweeps" / "tiny" / "champion.json").read_text())["trial_id"] == before
