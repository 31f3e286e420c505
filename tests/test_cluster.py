"""raymm.cluster: workers that can never fit the cluster are refused, after a bounded wait."""

import time

import pytest
import ray

from raymm.config import build_config
from raymm.cluster import check_fit
from raymm.errors import InputError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def one_cpu():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
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
