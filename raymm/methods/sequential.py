"""The sequential family's task: segments from the streamed training interactions, next-item loss
at every position, full-ranking next-item evaluation (:mod:`raymm.sequences`). SASRec, KDSR and
ODMT build on it."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raymm.methods.base import SharedData, Task
from raymm.models.registry import to_payload
from raymm.sequences import SequenceData, next_item_sums


class SeqBatch:
    """One training batch on the device: (B, L) segment inputs (shifted ids, 0 = padding) and (B, L)
    targets (item ids; -1 where the input is padding), from :meth:`raymm.sequences.SequenceData.segments`.
    ``weight`` is 0 for a stand-in batch (one padding-only segment with one dummy target) when none
    of the streamed rows was an anchor: the step then runs the same graph with a zero loss, so every
    DDP worker still takes part."""

    def __init__(self, windows: torch.Tensor, targets: torch.Tensor, weight: float = 1.0):
        self.windows, self.targets, self.weight = windows, targets, weight

    def to(self, device) -> "SeqBatch":
        return SeqBatch(self.windows.to(device), self.targets.to(device), self.weight)

    @property
    def valid(self) -> torch.Tensor:
        """(B, L) bool: positions with a target."""
        return self.targets >= 0


def next_item_loss(state: torch.Tensor, item_rows, num_items: int, targets: torch.Tensor, negatives: int = 0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Cross-entropy of the next item (SASRec trained with a softmax, as in BERT4Rec and the
    sequential KD papers): (N, d) states, ``item_rows((n,) item ids) -> (n, d)`` vectors, (N,)
    targets -> scalar.

    ``negatives == 0``: full softmax over all ``num_items`` items. ``negatives > 0``: sampled
    softmax over the target and ``negatives`` items drawn uniformly (shared by the batch; a drawn
    item equal to a row's target is masked); only those items' vectors are computed, so memory and
    time do not grow with the catalogue."""
    if negatives == 0:
        items = item_rows(torch.arange(num_items, device=state.device))
        return F.cross_entropy(state @ items.T, targets)
    neg = torch.randint(0, num_items, (negatives,), device=state.device, generator=generator)
    pos_logit = (state * item_rows(targets)).sum(1, keepdim=True)  # (B, 1)
    neg_logit = state @ item_rows(neg).T  # (B, n)
    neg_logit = neg_logit.masked_fill(neg[None, :] == targets[:, None], -torch.inf)
    logits = torch.cat([pos_logit, neg_logit], 1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=state.device))


class SequentialTask(Task):
    """Base of the sequential family. Subclasses build the module (which scores windows with
    ``score(windows) -> (B, I)``) and may add loss terms; options come from :meth:`options`
    (``max_len``, ``loss``, ``num_negatives``)."""

    def options(self):
        """This method's ``method.<name>`` section (max_len, loss, num_negatives ...)."""
        return getattr(self.cfg.method, self.cfg.method.name)

    @property
    def seq(self) -> SequenceData:
        return self.shared.extras["sequences"]

    def setup(self, rank: int, world: int, device) -> None:
        self.device = device
        self.eval_examples = {s: self.seq.examples(s)[rank::world] for s in ("val", "test")}

    def start_epoch(self, seed: int, epoch: int = 0) -> None:
        self.epoch = epoch
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def batch_from_rows(self, rows: dict[str, np.ndarray]) -> SeqBatch:
        """The segments ending at the streamed rows that are anchors (about one row in ``max_len``
        on long timelines; the batch holds about as many targets as rows)."""
        length = self.options().max_len
        pos = self.seq.positions(rows["user_id"].astype(np.int64), rows["item_id"].astype(np.int64))
        pos = pos[self.seq.anchors(pos, length)]
        if not len(pos):
            targets = torch.full((1, length), -1, dtype=torch.long)
            targets[0, -1] = 0
            return SeqBatch(torch.zeros(1, length, dtype=torch.long), targets, weight=0.0).to(self.device)
        windows, targets = self.seq.segments(pos, length)
        return SeqBatch(torch.from_numpy(windows), torch.from_numpy(targets)).to(self.device)

    def loss(self, model: nn.Module, batch: SeqBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Next-item CE at every position of every segment (SASRec, eq. 10, with a softmax)."""
        opts = self.options()
        valid = batch.valid
        state = model(batch.windows, all_positions=True)[valid]  # (N, d), N = targets in the batch
        rec = self.ranking_module()
        ce = next_item_loss(state, rec.item_rows, rec.num_items, batch.targets[valid],
                            opts.num_negatives if opts.loss == "sampled" else 0, self.generator)
        return ce * batch.weight, {"ce": ce.item()}

    @classmethod
    def loss_label(cls, cfg) -> str:
        return "next-item CE"

    def has_split(self, which: str) -> bool:
        return len(self.seq.examples(which)) > 0

    def eval_sums(self, which: str) -> torch.Tensor:
        ranker = self.ranking_module()
        return next_item_sums(ranker.score, self.seq, self.eval_examples[which], self.options().max_len,
                              self.cfg.eval.ks, self.cfg.eval.mask_history, self.device,
                              self.cfg.eval.user_batch_size)

    def payload(self) -> dict:
        return to_payload(self.ranking_module())


def precompute_sequences(dataset, shared: SharedData) -> None:
    """The dataset's timelines, once on the driver (refuses data without timestamps or with a split
    that is not ordered in time)."""
    shared.extras["sequences"] = SequenceData.from_dataset(dataset)
