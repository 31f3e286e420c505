"""``method.freedom.*``: FREEDOM's options (Zhou and Shen, ACM MM 2023; :mod:`raymm.models.freedom`).
The same section configures FREEDOM as PromptMM's teacher (``method.promptmm.teacher.freedom``)."""

from __future__ import annotations

from pydantic import Field

from raymm.configbase import _Section


class FreedomConfig(_Section):
    knn_k: int = Field(10, gt=0)  # k: neighbours of each item in each modality's frozen kNN graph
    item_layers: int = Field(1, ge=0)  # L_ii: item-item convolutions
    modality_weights: dict[str, float] | None = None  # alpha_m (normalised to sum 1); None: equal weights
    edge_drop: float = Field(0.8, ge=0, lt=1)  # rho: share of user-item edges pruned each epoch (degree-sensitive)
    modal_weight: float = Field(1e-4, ge=0)  # lambda: weight of each modality's BPR term
