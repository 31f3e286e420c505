"""The sequence view of a dataset: every user's time-ordered timeline (all splits), the windows a
sequential model reads, and next-item evaluation with full ranking.

The sequential family's counterpart of :mod:`raymm.graph`. Built once on the driver and shared
through the object store. Evaluation reads windows: the up to ``max_len`` items strictly before a
target in its user's timeline, so a target never appears in its own window. Training reads
segments (:meth:`SequenceData.segments`): Ray Data streams the training interactions and each worker
keeps the anchors among them (every ``max_len``-th training interaction counted back from each user's
last one); the segment ending at an anchor trains every position to predict the item after it
(SASRec's objective, Kang and McAuley 2018, eq. 10), and the segments tile each training timeline,
so every training interaction but a user's first is a target exactly once per epoch. Item ids in
windows are shifted by one; 0 is padding (windows are left-padded).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from raymm.data.schema import SPLITS, DataValidationError
from raymm.data.splits import time_order
from raymm.data.validate import SPLIT_CODE, InteractionChecker
from raymm.evaluation import add_metric_sums
from raymm.metrics import METRICS


@dataclass
class SequenceData:
    num_users: int
    num_items: int
    indptr: np.ndarray  # (U+1,) user u's timeline is [indptr[u], indptr[u+1])
    items: np.ndarray  # (n,) item ids, time-ordered per user
    split: np.ndarray  # (n,) int8 split code of each position
    keys: np.ndarray  # (n,) sorted user * I + item
    key_pos: np.ndarray  # (n,) position of keys[k]

    @classmethod
    def from_arrays(cls, users: np.ndarray, items: np.ndarray, splits: np.ndarray, timestamps: np.ndarray,
                    num_users: int, num_items: int, source: str = "<interactions>") -> "SequenceData":
        """Timelines from per-interaction arrays (``splits`` as codes). Refuses a split that is not
        time-ordered (a val/test item before a train item of the same user would leak the future)."""
        order = time_order(users, timestamps)
        u, it, sp = users[order], items[order].astype(np.int64), splits[order].astype(np.int8)
        same_user = u[1:] == u[:-1]
        back = np.flatnonzero(same_user & (sp[1:] < sp[:-1]))
        if back.size:
            k = int(order[back[0] + 1])
            raise DataValidationError(source, f"user {int(u[back[0]])} has a {SPLITS[sp[back[0] + 1]]} interaction "
                                      f"after a {SPLITS[sp[back[0]]]} one: sequential methods need splits ordered in "
                                      "time (import with --split loo or ratio:<r>)", column="split", row=k)
        indptr = np.r_[0, np.cumsum(np.bincount(u, minlength=num_users))].astype(np.int64)
        keys = u.astype(np.int64) * num_items + it
        key_order = np.argsort(keys, kind="stable")
        return cls(num_users, num_items, indptr, it, sp, keys[key_order], key_order.astype(np.int64))

    @classmethod
    def from_tables(cls, tables, num_users: int, num_items: int, source: str) -> "SequenceData":
        """Timelines from ``(file, table)`` interaction shards with a ``timestamp`` column, validated
        as on load (:class:`raymm.data.validate.InteractionChecker`: ids, splits, duplicates)."""
        checker = InteractionChecker(num_users, num_items)
        stamps = []
        for file, table in tables:
            if "timestamp" not in table.column_names:
                raise DataValidationError(file, "sequential methods need a timestamp per interaction",
                                          column="timestamp")
            checker.add(table, file)
            stamps.append(table.column("timestamp").to_numpy().astype(np.int64))
        checker.finish()
        users, items, codes = (np.concatenate(x) for x in zip(*checker.parts))
        return cls.from_arrays(users, items, codes, np.concatenate(stamps), num_users, num_items, source)

    @classmethod
    def from_dataset(cls, dataset) -> "SequenceData":
        """The dataset's timelines (it must have timestamps); each shard is read once."""
        if not dataset.manifest.has_timestamp:
            raise DataValidationError(dataset.uri, "sequential methods need a 'timestamp' column in the interactions",
                                      column="timestamp")
        return cls.from_tables(dataset.interaction_tables(), dataset.num_users, dataset.num_items, dataset.uri)

    def positions(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n,) timeline positions of the given (user, item) interactions."""
        keys = users.astype(np.int64) * self.num_items + items
        k = np.searchsorted(self.keys, keys)
        if (k >= len(self.keys)).any() or (self.keys[np.minimum(k, len(self.keys) - 1)] != keys).any():
            raise KeyError("interaction not in the sequence data")
        return self.key_pos[k]

    def user_of(self, pos: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.indptr, pos, side="right") - 1

    def windows(self, pos: np.ndarray, max_len: int) -> np.ndarray:
        """(n, max_len) int64: the items before each position in its user's timeline, oldest first,
        shifted by one and left-padded with 0."""
        start = self.indptr[self.user_of(pos)]
        idx = pos[:, None] - max_len + np.arange(max_len)[None, :]  # (n, L) positions pos-L .. pos-1
        valid = idx >= start[:, None]
        return np.where(valid, self.items[np.maximum(idx, 0)] + 1, 0)

    @cached_property
    def train_end(self) -> np.ndarray:
        """(U,) timeline position of each user's last training interaction (-1 when none)."""
        pos = np.flatnonzero(self.split == SPLIT_CODE["train"])
        end = np.full(self.num_users, -1, dtype=np.int64)
        np.maximum.at(end, self.user_of(pos), pos)
        return end

    def anchors(self, pos: np.ndarray, max_len: int) -> np.ndarray:
        """Mask of the training positions that end a segment: each user's last training interaction
        and every ``max_len``-th one before it, except a user's first item (nothing precedes it)."""
        user = self.user_of(pos)
        return (pos > self.indptr[user]) & ((self.train_end[user] - pos) % max_len == 0)

    def segments(self, pos: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """The training segments ending at positions ``pos``: (n, L) inputs, the items at positions
        pos-L .. pos-1 (:meth:`windows`), and (n, L) targets, the items at pos-L+1 .. pos (item ids,
        not shifted; -1 where the input is padding). Input k is followed by target k: a causal model
        trained on all positions predicts each target from the items before it only."""
        inputs = self.windows(pos, max_len)
        idx = pos[:, None] - max_len + 1 + np.arange(max_len)[None, :]
        targets = np.where(inputs != 0, self.items[np.clip(idx, 0, len(self.items) - 1)], -1)
        return inputs, targets

    def examples(self, split: str) -> np.ndarray:
        """Positions of the interactions of ``split`` (each is one next-item example)."""
        return np.flatnonzero(self.split == SPLIT_CODE[split]).astype(np.int64)

    def trainable(self, pos: np.ndarray) -> np.ndarray:
        """Mask of positions with at least one item before them (a first item has no history)."""
        return pos > self.indptr[self.user_of(pos)]


@torch.no_grad()
def next_item_sums(score_fn, seq: SequenceData, examples: np.ndarray, max_len: int, ks: list[int],
                   mask_history: bool, device, batch_size: int = 512) -> torch.Tensor:
    """Full-ranking next-item metric sums over ``examples`` (timeline positions), in
    :func:`raymm.evaluation.metric_names` order, then the example count.

    ``score_fn((b, L) windows) -> (b, I)`` scores every item. With ``mask_history`` every item of
    the user's timeline before the target scores -inf (never ranked); otherwise nothing is masked.
    A NaN score ranks lowest. One relevant item per example, so recall@K = hit@K (HR@K)."""
    kmax = max(ks)
    sums = torch.zeros(len(METRICS) * len(ks) + 1, dtype=torch.float64, device=device)
    for s in range(0, len(examples), batch_size):
        pos = examples[s:s + batch_size]
        win = torch.from_numpy(seq.windows(pos, max_len)).to(device)
        scores = torch.nan_to_num(score_fn(win).float(), nan=-torch.inf)
        if mask_history:
            start = seq.indptr[seq.user_of(pos)]
            counts = pos - start
            rows = np.repeat(np.arange(len(pos)), counts)
            cols = seq.items[np.concatenate([np.arange(a, b) for a, b in zip(start, pos)])] if counts.sum() else \
                np.zeros(0, np.int64)
            scores[torch.from_numpy(rows).to(device), torch.from_numpy(cols).to(device)] = -torch.inf
        target = torch.from_numpy(seq.items[pos]).to(device)
        top = torch.topk(scores, min(kmax, scores.shape[1]), dim=1)
        hits = (top.indices == target[:, None]) & (top.values > -torch.inf)
        add_metric_sums(sums, hits, torch.ones(len(pos), dtype=torch.long, device=device), ks)
    return sums
