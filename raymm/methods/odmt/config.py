"""``method.odmt.*``: ODMT's options (spec: ``../shared/docs/methods.md``, "ODMT")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from raymm.configbase import _Section


class ODMTConfig(_Section):
    max_len: int = Field(50, gt=0)  # L: items of history in a window
    item_layers: int = Field(2, gt=0)  # layers of the ID-aware item transformer
    item_heads: int = Field(2, gt=0)  # its heads (divide model.embedding_dim)
    num_blocks: int = Field(2, gt=0)  # causal blocks of each branch's user encoder
    num_heads: int = Field(2, gt=0)  # their heads (divide model.embedding_dim)
    dropout: float = Field(0.2, ge=0, lt=1)
    tau: float = Field(0.3, gt=0)  # online KD temperature (the public code's run scripts use 0.3)
    kd_weight: float = Field(1.0, ge=0)  # weight of the online KD terms (0: "w/o online KD")
    ramp_up_epochs: int = Field(20, ge=0)  # a of the sigmoid ramp-up exp(-5 (1 - min(epoch, a)/a)^2)
    popularity_debias: bool = True  # subtract the log-Q (inclusion probability) of each in-batch candidate
    # Items of a position's own segment (other than its target) as in-batch negatives: "as_eval" drops
    # them when eval.mask_history is true (the public code's protocol: masked in training and ranking)
    # and keeps them when it is false, so that training and ranking treat history items alike.
    history_negatives: Literal["as_eval", "drop", "keep"] = "as_eval"
