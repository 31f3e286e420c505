"""``method.sasrec.*``: SASRec's options (Kang and McAuley, ICDM 2018)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from raymm.configbase import _Section


class SASRecConfig(_Section):
    max_len: int = Field(50, gt=0)  # L: items of history a window holds
    num_blocks: int = Field(2, gt=0)  # self-attention blocks
    num_heads: int = Field(1, gt=0)  # attention heads (must divide model.embedding_dim)
    dropout: float = Field(0.2, ge=0, lt=1)
    loss: Literal["full", "sampled"] = "full"  # softmax over all items | sampled softmax (large catalogues)
    num_negatives: int = Field(100, gt=0)  # sampled: uniform negatives per batch

    @model_validator(mode="after")
    def _negatives(self) -> "SASRecConfig":
        if self.loss == "full" and self.num_negatives != type(self).model_fields["num_negatives"].default:
            raise ValueError("num_negatives applies to loss: sampled")
        return self
