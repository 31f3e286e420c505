"""Connecting a job to Ray, and what every Ray worker process of a raymm job sets up first."""

from __future__ import annotations

import os

import ray
import ray.data

from raymm.ray_logging import quiet_ray_logs


def setup_worker_process() -> None:
    """Ray's ``worker_process_setup_hook`` for raymm jobs (runs first in every worker process).

    - ``RAY_ADDRESS`` = this cluster's GCS address. Ray Train's placement-group cleaner asks the
      state API for the controller's liveness without an address; with two Ray instances on one
      machine that lookup fails ("Found multiple active Ray instances"), prints a traceback and the
      cleaner stops watching for good.
    - :func:`raymm.ray_logging.quiet_ray_logs`: Ray Data and Ray Train print only warnings and
      errors to the console (their INFO lines per dataset execution and checkpoint drown raymm's
      progress lines); Ray Data's full log stays in ``ray-data.log`` in the session's log directory.
    - No Ray Data progress bars in workers: a Tune trial materialises its training rows in its own
      process, whose bars would otherwise fill the sweep's log.
    """
    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    quiet_ray_logs()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def runtime_env() -> dict:
    """The job-level runtime env of every raymm job (tests' ``ray.init`` use it too)."""
    env = {"worker_process_setup_hook": "raymm.cluster.setup_worker_process"}
    if "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER" in os.environ:  # Tune trials build their trainers in workers
        env["env_vars"] = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"]}
    return env


def init_ray() -> None:
    """The cluster of ``ray job submit`` (``RAY_ADDRESS``), else a new local instance.

    A local instance gets twice as many logical CPUs as cores (at least 4): Train workers reserve
    CPUs, and Ray Data (which streams their input) waits forever when nothing is left for it,
    notably inside Tune trials on a 2-core machine.

    Ray Train's preemption watcher is off unless ``RAY_TRAIN_ENABLE_PREEMPTION_WATCHER`` is set:
    raymm does not read its notices (a preempted run restarts from its last epoch checkpoint,
    ``train.max_failures``), and the watcher logs a core-worker error line at every worker-group
    start (its constructor arguments live in the object store while it may restart).
    """
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")  # read by the Train controller
    quiet_ray_logs()  # this driver process
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=runtime_env())
    else:
        ray.init(address="local", num_cpus=max(4, 2 * (os.cpu_count() or 1)), runtime_env=runtime_env())
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.DataContext.get_current().print_on_execution_start = False


def check_fit(cfg, concurrent: int = 1, extra_cpus: float = 0.0) -> None:
    """Fail at once when the Train workers (``concurrent`` runs of ``train.num_workers`` x
    ``train.cpus_per_worker`` CPUs, one GPU each with ``train.use_gpu``) can never fit the
    cluster; Ray would otherwise wait for them forever. An autoscaling cluster may grow: with
    ``train.resource_wait_s`` > 0 the check waits that long for the resources to appear first."""
    import time

    from raymm.errors import InputError

    t = cfg.train
    need = {"CPU": concurrent * (t.num_workers * t.cpus_per_worker + extra_cpus)}
    if t.use_gpu:
        need["GPU"] = float(concurrent * t.num_workers)
    deadline = time.monotonic() + t.resource_wait_s
    while True:
        have = ray.cluster_resources()
        short = {k: (v, have.get(k, 0.0)) for k, v in need.items() if v > have.get(k, 0.0) + 1e-9}
        if not short or time.monotonic() >= deadline:
            break
        time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
    if short:
        per_worker = {"CPU": f"train.cpus_per_worker={t.cpus_per_worker:g}", "GPU": "1 GPU"}
        trials = f" x {concurrent} concurrent trials" if concurrent > 1 else ""
        what = "; ".join(f"{v:g} {k} asked (train.num_workers={t.num_workers} x {per_worker[k]}{trials}), "
                         f"the cluster has {h:g}" for k, (v, h) in short.items())
        waited = f" after waiting {t.resource_wait_s:g} s (train.resource_wait_s)" if t.resource_wait_s else ""
        raise InputError(f"the training workers can never fit this cluster{waited}: {what}")
