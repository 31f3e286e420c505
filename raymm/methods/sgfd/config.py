"""``method.sgfd.*``: SGFD's options (spec: ``../shared/docs/methods.md``, "SGFD")."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from raymm.configbase import _Section


class SGFDConfig(_Section):
    backbone: Literal["lightgcn_m", "promptmm"] = "lightgcn_m"  # which model consumes the student features
    # "category": the dataset's item table; "kmeans:<K>": k-means over the concatenated features
    # (a deviation from the paper, for data without item labels such as TikTok)
    labels: str = "category"
    w_ce: float = Field(0.1, ge=0)  # weight of the CE terms (0: "w/o CE")
    w_kd: float = Field(1.0, ge=0)  # weight of the KD terms (0: "w/o KD"); both 0: the backbone alone
    temperature: float = Field(10.0, gt=0)  # T of the tempered class distributions
    fusion: bool = True  # the fusion classifier C_f over the teachers (False: "w/o fusion")
    feature_weight: float = Field(1.0, ge=0)  # lightgcn_m: scale of the student features added to E_i
    model_cat_rate: float = Field(0.1, ge=0)  # promptmm backbone: a_mc
    dropout: float = Field(0.0, ge=0, lt=1)  # promptmm backbone: dropout on the extracted features
    kmeans_iters: int = Field(50, gt=0)
    seed: int = 0  # k-means seed

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: str) -> str:
        if v != "category" and not re.fullmatch(r"kmeans:[1-9][0-9]*", v):
            raise ValueError(f"must be 'category' or 'kmeans:<K>' with K >= 1, got {v!r}")
        return v

    @model_validator(mode="after")
    def _no_idle_options(self) -> "SGFDConfig":
        """A value set for an option that the chosen backbone or labels ignore is an error, not a no-op."""
        idle = {"lightgcn_m": ("model_cat_rate", "dropout"), "promptmm": ("feature_weight",)}[self.backbone]
        if self.labels == "category":
            idle += ("kmeans_iters", "seed")
        for name in idle:
            default = type(self).model_fields[name].default
            if getattr(self, name) != default:
                used_by = "labels: kmeans:<K>" if name in ("kmeans_iters", "seed") else \
                    f"backbone {'promptmm' if self.backbone == 'lightgcn_m' else 'lightgcn_m'}"
                raise ValueError(f"{name}={getattr(self, name)!r} does nothing here (backbone {self.backbone}, labels "
                                 f"{self.labels}); it applies to {used_by} only")
        return self

    @property
    def distils(self) -> bool:
        """False when both weights are 0: the backbone alone, with no teacher or classifier."""
        return bool(self.w_ce or self.w_kd)
