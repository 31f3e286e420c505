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
