"""Datasets, checkpoints and sweep state on ``s3://``, against a real S3-compatible server (moto's
server mode, started here on 127.0.0.1): the train job reads its dataset from S3, writes its Ray
Train checkpoints there and, relaunched, finds the finished stage there; a sweep keeps its Tune
state and its trials' checkpoints there and registers its champion from them."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.synthetic.num_users=200", "data.synthetic.num_items=100", "data.synthetic.num_interactions=3000",
        "data.synthetic.modalities={image: 8}", "train.batch_size=256", "eval.user_batch_size=64"]
BUCKET = "raymm-test"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    """A moto S3 server on a free 127.0.0.1 port with one bucket; the environment that points
    pyarrow, boto3 and the jobs' Ray workers at it (fake credentials, only valid there)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")
        for _ in range(100):
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - the server is still starting
                time.sleep(0.1)
        else:
            raise RuntimeError("moto server did not start")
        yield env, client
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _keys(client, prefix):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _run(env, *args, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_train_job_with_data_and_checkpoints_on_s3(s3_env, tmp_path):
    env, client = s3_env
    # The dataset is generated straight into the bucket (manifest written last).
    gen = _run(env, "-c", "import sys; from raymm.config import build_config; from raymm.data.synthetic import generate; "
               f"generate(build_config({{}}, sys.argv[1:]).data.synthetic, 's3://{BUCKET}/datasets/tiny')", *TINY)
    assert gen.returncode == 0, gen.stderr[-3000:]
    assert "datasets/tiny/manifest.json" in _keys(client, "datasets/tiny/")

    args = ["jobs/train.py", "--config", "conf/lightgcn.yaml", *TINY, "train.epochs=2",
            "data.source=path", f"data.path=s3://{BUCKET}/datasets/tiny", f"output.storage=s3://{BUCKET}/store",
            f"output.dir={tmp_path}", "output.run_name=s3run"]
    proc = _run(env, *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    checkpoints = {k.split("/")[3] for k in _keys(client, "store/ray_results/s3run-lightgcn/checkpoint_")
                   if k.endswith("best_model.pt")}
    assert checkpoints, "no checkpoint reached the bucket"
    assert "store/ray_results/s3run-lightgcn/raymm_config.yaml" in _keys(client, "store/ray_results/s3run-lightgcn/")
    assert not (tmp_path / "ray_results").exists()  # nothing went to the local default

    # Relaunched: the finished stage is found in the bucket and loaded from there, not retrained.
    again = _run(env, *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    out = again.stdout + again.stderr
    assert f"lightgcn: already trained (s3://{BUCKET}/store/ray_results/s3run-lightgcn/checkpoint_" in out
    assert "lightgcn epoch" not in out


def test_sweep_state_and_champion_on_s3(s3_env, tmp_path):
    env, client = s3_env
    sweep = {
        "name": "s3sweep", "base": str(ROOT / "conf" / "promptmm.yaml"),
        "overrides": ["method.name=lightgcn", *TINY, "train.epochs=1", f"output.dir={tmp_path}",
                      f"output.storage=s3://{BUCKET}/store"],
        "space": {"train.lr": {"type": "grid", "values": [0.05, 0.01]}},
        "search": {"algorithm": "grid", "num_samples": 1}, "scheduler": {"type": "fifo"},
        "registry": {"model_name": "s3-student", "alias": "champion", "top_k": 5},
    }
    path = tmp_path / "s3sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    proc = _run(env, "jobs/tune.py", "--config", str(path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    keys = _keys(client, "store/tune/")
    assert any(k.startswith("store/tune/s3sweep/experiment_state") for k in keys), keys[:20]  # Tune's own state
    assert sum(k.endswith("best_model.pt") and "-lightgcn/checkpoint_" in k for k in keys) >= 2  # both trials
    assert "registered models:/s3-student@champion" in proc.stdout
    assert not (tmp_path / "tune").exists()
