"""raymm.cluster: workers that can never fit the cluster are refused, after a bounded wait; every
worker process of a raymm job pins its own cluster's address and quiets Ray's INFO chatter."""

import logging
import time

import pytest
import ray

from raymm.config import build_config
from raymm.cluster import check_fit, runtime_env
from raymm.errors import InputError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def one_cpu():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env())
    yield
    ray.shutdown()


def test_fits_or_is_refused_after_the_bounded_wait(one_cpu):
    check_fit(build_config({}, ["train.num_workers=2", "train.cpus_per_worker=0.5"]))  # 1 CPU: fits
    cfg = build_config({}, ["train.num_workers=2", "train.cpus_per_worker=1", "train.resource_wait_s=1.5"])
    start = time.monotonic()
    with pytest.raises(InputError, match=r"after waiting 1.5 s \(train.resource_wait_s\): 2 CPU asked .* the cluster has 1"):
        check_fit(cfg)
    assert time.monotonic() - start >= 1.4
    with pytest.raises(InputError, match="x 3 concurrent trials"):
        check_fit(build_config({}, ["train.num_workers=1", "train.cpus_per_worker=0.5"]), concurrent=3)


def test_worker_processes_pin_their_cluster_and_quiet_ray_info_lines(one_cpu):
    """The worker setup hook: RAY_ADDRESS is this cluster's GCS (Ray Train's placement-group cleaner
    resolves "the" cluster from it), Ray Train logs at WARNING, and Ray Data's console handler drops
    INFO lines and the progress-bar hint but shows warnings."""

    @ray.remote(num_cpus=0)
    def probe():
        import os

        import ray.data  # noqa: F401  (configures the "ray.data" logger from RAY_DATA_LOGGING_CONFIG)

        console = [h for h in logging.getLogger("ray.data").handlers if type(h).__name__ == "PlainRayHandler"][0]

        def shown(level, msg):
            return bool(console.filter(logging.LogRecord("ray.data", level, "", 0, msg, None, None))) \
                and level >= console.level
        return (os.environ.get("RAY_ADDRESS"), logging.getLogger("ray.train").getEffectiveLevel(),
                shown(logging.INFO, "Starting execution of Dataset x"),
                shown(logging.WARNING, "Progress bars disabled. To enable, ..."),
                shown(logging.WARNING, "a real warning"), ray.data.DataContext.get_current().enable_progress_bars)

    address, train_level, info, hint, warning, bars = ray.get(probe.remote())
    assert bars is False  # a Tune trial's own Ray Data executions print no progress bars
    assert address == ray.get_runtime_context().gcs_address
    assert train_level == logging.WARNING
    assert (info, hint, warning) == (False, False, True)
