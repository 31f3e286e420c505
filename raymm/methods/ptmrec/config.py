"""``method.ptmrec.*``: PTMRec's options (spec: ``../shared/docs/methods.md``, "PTMRec")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from raymm.configbase import _Section


class PTMRecConfig(_Section):
    peft: Literal["lora", "prompt"] = "lora"  # stage 2's adapter on the text encoder
    lora_rank: int = Field(8, gt=0)  # r (peft: lora)
    lora_alpha: float = Field(16.0, gt=0)  # alpha (peft: lora)
    prompt_tokens: int = Field(8, gt=0)  # P trainable prompt tokens (peft: prompt)
    max_tokens: int = Field(32, gt=0)  # tokens kept of each item text
    feature_weight: float = Field(1.0, ge=0)  # scale of the projected text vector added to E_i (LightGCN-M)
    tau: float = Field(0.5, gt=0)  # temperature of the similarity distributions
    kt_item_weight: float = Field(1.0, ge=0)  # item-item knowledge transfer (both 0: "w/o knowledge transfer")
    kt_user_weight: float = Field(1.0, ge=0)  # user-item knowledge transfer
    encoder_lr: float = Field(1e-3, gt=0)  # learning rate of the adapter (train.lr: the recommender's)
    tune_lr: float | None = Field(None, gt=0)  # the recommender's learning rate in stage 2; None: train.lr
    refresh_every: int = Field(20, gt=0)  # steps between full re-encodings of the item text cache
    fresh_items: int = Field(256, gt=0)  # at most this many of a batch's items encoded with gradients per step
    stage1_epochs: int = Field(30, gt=0)  # stage 1 (frozen encoder); stage 2 uses train.epochs
    stage1_patience: int = Field(5, gt=0)

    @model_validator(mode="after")
    def _no_idle_options(self) -> "PTMRecConfig":
        """An option of the other adapter, set to a non-default value, is an error, not a no-op."""
        idle = ("prompt_tokens",) if self.peft == "lora" else ("lora_rank", "lora_alpha")
        for name in idle:
            if getattr(self, name) != type(self).model_fields[name].default:
                raise ValueError(f"{name}={getattr(self, name)!r} does nothing with peft={self.peft}")
        return self
