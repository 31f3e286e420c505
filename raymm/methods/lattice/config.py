"""``method.lattice.*``: LATTICE's options (Zhang et al., ACM MM 2021; :mod:`raymm.models.lattice`).
The same section configures LATTICE as PromptMM's teacher (``method.promptmm.teacher.lattice``)."""

from __future__ import annotations

from pydantic import Field

from raymm.configbase import _Section


class LatticeConfig(_Section):
    knn_k: int = Field(10, gt=0)  # k: neighbours of each item in each modality's graphs
    item_layers: int = Field(1, ge=0)  # L_ii: item-item convolutions
    lambda_coeff: float = Field(0.9, ge=0, le=1)  # lambda: weight of the original (feature) graphs against the learned
