"""Item text vectors for a training step without encoding every item every step."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ItemTextCache:
    """(I, d) encoder outputs of every item. :meth:`table` encodes the batch's items afresh (they carry
    gradients into the adapter) and reads all other items from the cache; the cache is re-encoded in
    full every ``every`` steps (:meth:`step`), and the batch's fresh rows are written back each step.

    Args:
        tokens: ``{"input_ids", "attention_mask"}``, each (I, T) (:func:`raymm.models.text_encoder.tokenize`).
        every: steps between full refreshes (>= 1).
        chunk: items per encoder call when refreshing."""

    def __init__(self, tokens: dict[str, np.ndarray], every: int, chunk: int = 256):
        if every < 1:
            raise ValueError(f"every must be >= 1, not {every}")
        self.ids = torch.as_tensor(tokens["input_ids"])
        self.mask = torch.as_tensor(tokens["attention_mask"])
        self.every, self.chunk = every, chunk
        self.cache: torch.Tensor | None = None
        self.steps = 0
        self.refreshes = 0

    def encode(self, encoder: nn.Module, rows: torch.Tensor) -> torch.Tensor:
        """(n, d) encoder vectors of items ``rows``, their tokens cut to the longest text among them
        (padding past it changes nothing: it is masked out of attention and pooling)."""
        device = next(encoder.parameters()).device
        ids, mask = self.ids[rows], self.mask[rows]
        width = max(int(mask.sum(1).max()), 1)
        return encoder(ids[:, :width].to(device), mask[:, :width].to(device))

    @torch.no_grad()
    def refresh(self, encoder: nn.Module) -> None:
        """Re-encode every item (eval mode: no dropout; the encoder's mode is restored)."""
        was_training = encoder.training
        encoder.eval()
        order = torch.arange(len(self.ids))
        parts = [self.encode(encoder, order[s:s + self.chunk]) for s in range(0, len(self.ids), self.chunk)]
        encoder.train(was_training)
        self.cache = torch.cat(parts)
        self.refreshes += 1

    def table(self, encoder: nn.Module, items: torch.Tensor) -> torch.Tensor:
        """(I, d) item vectors: rows ``items`` ((b,) distinct item ids) encoded now, with gradients;
        every other row from the cache (refreshed first if there is none yet)."""
        if self.cache is None:
            self.refresh(encoder)
        fresh = self.encode(encoder, items.cpu())
        items = items.to(self.cache.device)
        self.cache[items] = fresh.detach()
        return self.cache.index_copy(0, items, fresh)

    def step(self, encoder: nn.Module) -> None:
        """Count one optimiser step; re-encode everything every ``every`` steps."""
        self.steps += 1
        if self.steps % self.every == 0:
            self.refresh(encoder)
