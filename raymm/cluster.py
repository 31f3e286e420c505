"""Connecting a job to Ray."""

from __future__ import annotations

import os

import ray
import ray.data


def init_ray() -> None:
    """The cluster of ``ray job submit`` (``RAY_ADDRESS``), else a new local instance.

    A local instance gets twice as many logical CPUs as cores (at least 4): Train workers reserve
    CPUs, and Ray Data (which streams their input) waits forever when nothing is left for it,
    notably inside Tune trials on a 2-core machine.
    """
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", num_cpus=max(4, 2 * (os.cpu_count() or 1)))
    ray.data.DataContext.get_current().enable_progress_bars = False


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
