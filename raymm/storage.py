"""Where checkpoints and sweep state live: ``output.storage`` (a path every node sees, or a URI that
pyarrow reaches: ``s3://``, ``gs://`` ...), else ``output.dir`` on the driver's disk.

Checkpoints are read through :class:`ray.train.Checkpoint`, so the same code serves both.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import pyarrow.fs as pafs

from raymm.config import Config
from raymm.data.store import resolve


def is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts]) if is_uri(root) else os.path.join(root, *parts)


def storage_root(cfg: Config) -> str:
    return cfg.output.storage.rstrip("/") if cfg.output.storage else os.path.abspath(cfg.output.dir)


def training_storage(cfg: Config) -> str:
    """Ray Train's ``storage_path``: runs (and their checkpoints) are ``<this>/<run name>``."""
    return join(storage_root(cfg), "ray_results")


def tune_storage(cfg: Config) -> str:
    """Ray Tune's ``storage_path`` for sweeps; trials' Train runs live beside the sweep state."""
    return join(storage_root(cfg), "tune")


def is_dir(path: str) -> bool:
    fs, p = resolve(path)
    return fs.get_file_info(p).type == pafs.FileType.Directory


def checkpoint_dirs(run_path: str) -> list[str]:
    """The ``checkpoint_<timestamp>`` directories of one Ray Train run, oldest first (Ray also keeps a
    ``checkpoint_manager_snapshot.json`` there, which is not one)."""
    fs, p = resolve(run_path)
    if fs.get_file_info(p).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(p))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_"))
    return [join(run_path, n) for n in names]


@contextlib.contextmanager
def local_checkpoint(path: str) -> Iterator[str]:
    """A checkpoint directory (local path or URI) as a local directory for the ``with`` block."""
    import ray.train

    with ray.train.Checkpoint(path).as_directory() as d:
        yield d


def unwritable(path: str) -> str | None:
    """The nearest existing ancestor of local ``path`` (itself included) when it is not a directory
    this process can write into, so that ``path`` cannot be created or written; else None.
    Creates nothing."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    return None if os.path.isdir(probe) and os.access(probe, os.W_OK | os.X_OK) else probe


def check_output_dir(cfg: Config) -> None:
    """Refuse an ``output.dir`` this process cannot write (nothing is created here)."""
    from raymm.errors import InputError

    probe = unwritable(cfg.output.dir)
    if probe:
        what = "is not writable" if os.path.isdir(probe) else "is not a directory"
        raise InputError(f"output.dir {cfg.output.dir!r}: {probe} {what}; choose a directory you can write")
