"""Time-ordered user histories and the sequential split protocols.

Sequential recommenders read each user's interactions in time order. The sequence order is by
(user, timestamp), ties broken by row order (a stable sort), so it is deterministic for any input.

Split protocols (``protocol`` strings, recorded in the manifest as ``split_protocol``):

- ``loo`` (leave-one-out; ODMT's protocol): users with at least ``min_len`` interactions; each
  user's last interaction is test, the second-last validation, the rest train. Other users are dropped.
- ``ratio:<r>`` (KDSR's protocol uses r = 0.2): users with at least ``min_len`` interactions; the
  last ``ceil(r n)`` (at most ``(n - 1) // 2``) of each timeline is test, as many before it
  validation (for model selection; KDSR's paper has no validation split), the rest train.
"""

from __future__ import annotations

import numpy as np

from raymm.data.schema import DataValidationError
from raymm.errors import InputError


def time_order(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Row order that sorts by user, then timestamp, ties by row order (stable)."""
    return np.lexsort((np.arange(len(users)), timestamps, users))


def positions(users_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by user: ((n,) position of each row in its user's timeline, (n,) that user's length)."""
    if not len(users_sorted):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    lengths = np.diff(np.r_[starts, len(users_sorted)])
    pos = np.arange(len(users_sorted)) - np.repeat(starts, lengths)
    return pos, np.repeat(lengths, lengths)


def parse_protocol(protocol: str) -> tuple[str, float]:
    """("loo", 0) or ("ratio", r); a clear error for anything else."""
    if protocol == "loo":
        return "loo", 0.0
    if protocol.startswith("ratio:"):
        try:
            r = float(protocol.split(":", 1)[1])
        except ValueError:
            r = -1.0
        if 0 < r < 0.5:
            return "ratio", r
    raise InputError(f"split protocol {protocol!r}: expected 'loo' or 'ratio:<r>' with 0 < r < 0.5 (e.g. ratio:0.2)")


def assign_splits(users: np.ndarray, timestamps: np.ndarray, protocol: str, min_len: int = 5,
                  source: str = "<interactions>") -> tuple[np.ndarray, np.ndarray]:
    """Split interactions by time.

    Args:
        users: (n,) user id per interaction.
        timestamps: (n,) int timestamp per interaction.
        protocol: ``loo`` or ``ratio:<r>`` (module docstring).
        min_len: users with fewer interactions are dropped.

    Returns:
        ((n,) bool keep mask, (n,) object array of "train"/"val"/"test", meaningful where kept).
    """
    kind, r = parse_protocol(protocol)
    if min_len < 3:
        raise InputError(f"--min-len must be >= 3 (one train, one val, one test item), got {min_len}")
    if len(timestamps) and np.isnan(np.asarray(timestamps, dtype=np.float64)).any():
        row = int(np.flatnonzero(np.isnan(np.asarray(timestamps, dtype=np.float64)))[0])
        raise DataValidationError(source, "missing timestamp (time splits need one per interaction)",
                                  column="timestamp", row=row)
    order = time_order(users, timestamps)
    pos, length = positions(users[order])
    if kind == "loo":
        n_test = np.ones_like(length)
    else:
        n_test = np.minimum(np.ceil(length * r - 1e-9).astype(np.int64), (length - 1) // 2)  # >= 1 train item
    split = np.full(len(order), "train", dtype=object)
    split[pos >= length - 2 * n_test] = "val"
    split[pos >= length - n_test] = "test"
    keep = length >= min_len
    out_split = np.empty(len(users), dtype=object)
    out_keep = np.empty(len(users), dtype=bool)
    out_split[order], out_keep[order] = split, keep
    return out_keep, out_split

