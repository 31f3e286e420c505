"""What Ray prints to a raymm job's console: warnings and errors, not Ray Data's and Ray Train's
INFO chatter (kept in the session's log files). Imports nothing from Ray Data at module level:
``ray_data_logging.yaml`` names :class:`RayDataHintFilter`, and Ray Data reads that file on import."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

RAY_DATA_LOGGING = Path(__file__).with_name("ray_data_logging.yaml")


class RayDataHintFilter(logging.Filter):
    """Drops Ray Data's hint that progress bars are off (raymm turns them off on purpose: they would
    fill job logs); used by ``ray_data_logging.yaml``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Progress bars disabled")


def quiet_ray_logs() -> None:
    """In this process: Ray Data's console handler at WARNING (``RAY_DATA_LOGGING_CONFIG``, unless
    the user set it), Ray Train's loggers at WARNING, and Ray Train's internal ``exclude_resources``
    deprecation warning ignored (raymm never sets that option; Ray's own DataConfig does)."""
    os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(RAY_DATA_LOGGING))
    from ray.data._internal.logging import configure_logging  # re-read: ray.data may already be imported

    configure_logging()
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r"`ExecutionOptions.exclude_resources` is deprecated")
