"""`ray job submit` against a real local head (dashboard and job server on 127.0.0.1, token auth,
started by ``cluster/local_head.sh``): the training job runs; its driver is then killed mid-run and
the job resubmitted, and the resubmitted job resumes (same MLflow run, training continues from the
latest checkpoint) rather than starting again."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.synthetic.num_users=200", "data.synthetic.num_items=100", "data.synthetic.num_interactions=3000",
        "data.synthetic.modalities={image: 8}", "train.batch_size=128", "eval.user_batch_size=64",
        "train.epochs=6", "train.patience=10"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def head(tmp_path):
    """A head started by the project's own recipe; stopped (exactly it) at the end."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    ready = tmp_path / "address"
    proc = subprocess.Popen(["bash", "-c", f"source cluster/local_head.sh; raymm_head_start 4 || exit 1; "
                             f"echo \"$RAY_ADDRESS\" > {ready}; trap 'raymm_head_stop; exit 0' TERM; "
                             "sleep infinity & wait"], cwd=ROOT, env=env, start_new_session=True)
    try:
        for _ in range(300):
            if ready.exists() and ready.read_text().strip():
                break
            assert proc.poll() is None, "the head did not start"
            time.sleep(0.5)
        else:
            raise TimeoutError("the head did not start in 150 s")
        address = ready.read_text().strip()
        assert address.startswith("http://127.0.0.1:")
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(ROOT / ".ray_auth_token"), RAY_ADDRESS=address)
        yield address, env
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # the bash wrapper: its trap stops the head it started
        proc.wait(timeout=120)


def _submit(env, submission_id, out, run_name, wait):
    cmd = ["ray", "job", "submit", "--working-dir", ".", "--submission-id", submission_id,
           *([] if wait else ["--no-wait"]), "--", "python", "jobs/train.py", "--config",
           "conf/lightgcn.yaml", *TINY, f"output.dir={out}", f"output.run_name={run_name}"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _logs(env, submission_id):
    return subprocess.run(["ray", "job", "logs", submission_id], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120).stdout


def test_job_submit_then_driver_killed_and_resubmitted_resumes(head, tmp_path):
    address, env = head
    # Without the token, the job server refuses.
    anonymous = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    refused = subprocess.run(["ray", "job", "list", "--address", address], cwd=ROOT, env=anonymous,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0

    run_name = f"resubmit-{uuid.uuid4().hex[:6]}"
    first = _submit(env, f"{run_name}-1", tmp_path, run_name, wait=False)
    assert first.returncode == 0, first.stderr[-3000:]
    # Kill the job's driver (the python process running jobs/train.py) once Ray Train has
    # registered a checkpoint (its snapshot file lists it; a checkpoint directory alone is not yet one).
    deadline = time.monotonic() + 600
    while not (tmp_path / "ray_results" / f"{run_name}-lightgcn" / "checkpoint_manager_snapshot.json").exists():
        assert time.monotonic() < deadline, _logs(env, f"{run_name}-1")[-3000:]
        time.sleep(0.2)
    drivers = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and
               "jobs/train.py" in p.info["cmdline"] and f"output.run_name={run_name}" in p.info["cmdline"]]
    assert len(drivers) == 1, drivers
    drivers[0].send_signal(signal.SIGKILL)
    for _ in range(60):
        status = subprocess.run(["ray", "job", "status", f"{run_name}-1"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=120)
        if "failed" in (status.stdout + status.stderr).lower():
            break
        time.sleep(1)
    else:
        raise AssertionError(f"the killed job never failed: {status.stdout[-2000:]} {status.stderr[-2000:]}")
    assert not (tmp_path / "runs" / run_name / "metrics.json").exists()

    second = _submit(env, f"{run_name}-2", tmp_path, run_name, wait=True)
    logs = _logs(env, f"{run_name}-2")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    raymm_lines = "\n".join(line for line in logs.splitlines() if "[raymm]" in line)
    assert "(resumed)" in logs, raymm_lines  # the same MLflow run continues
    assert "lightgcn: resumed from checkpoint: next epoch" in logs, raymm_lines
    assert "lightgcn epoch 1/6" not in logs, raymm_lines  # not started again
    results = json.loads((tmp_path / "runs" / run_name / "metrics.json").read_text())
    assert results["epochs_run"] == 6 and results["val"]["recall@20"] > 0.3


def _cmdline(pid) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:  # gone meanwhile
        return ""


def _listening(pids):
    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.append((p.name(), " ".join(p.cmdline()[:3]), c.laddr.ip, c.laddr.port))
        except psutil.Error:
            pass
    return out


def test_listening_sockets_are_what_the_readme_says(head, tmp_path):
    """The README's security notes, checked on the cluster's own processes (by process id, while a
    job runs): the dashboard / job server listens on 127.0.0.1 only; Ray 2.60 has no option to bind
    its core processes (GCS, raylet, agents, workers, the job's driver) to loopback, so they listen
    on every interface and the README says to firewall them; nothing of the cluster listens on a
    port outside the ranges the README names."""
    address, env = head
    job = tmp_path / "job"
    job.mkdir()
    (job / "hold.py").write_text("import time, ray\nray.init()\nprint(ray.get(ray.put(1)))\ntime.sleep(30)\n")
    sub = subprocess.run(["ray", "job", "submit", "--no-wait", "--working-dir", str(job), "--", "python", "hold.py"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert sub.returncode == 0, sub.stderr[-2000:]
    heads = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and "--head" in p.info["cmdline"]
             and any(address.rsplit(":", 1)[1] == a for a in p.info["cmdline"])]
    assert len(heads) == 1, heads
    deadline = time.monotonic() + 120
    while True:  # until the job's driver (a process running hold.py) is up
        procs = [heads[0].pid] + [c.pid for c in heads[0].children(recursive=True)]
        sockets = _listening(procs)
        if any("hold.py" in _cmdline(pid) for pid in procs):
            break
        assert time.monotonic() < deadline, "the job's driver never started"
        time.sleep(1)
    dash_port = int(address.rsplit(":", 1)[1])
    dash = [s for s in sockets if s[3] == dash_port]
    assert dash and {s[2] for s in dash} == {"127.0.0.1"}, dash  # the dashboard / job server: loopback only
    # every other listener is one of the kinds the README lists: GCS, raylet, Ray's agents and workers
    # (ray::*), the job's driver (python)
    unknown = [s for s in sockets if s[3] != dash_port
               and not (s[0] in ("gcs_server", "raylet", "python", "python3") or s[0].startswith("ray::"))]
    assert not unknown, unknown
