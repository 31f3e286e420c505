"""Modality feature extractors of SGFD (Liu et al., "Semantic-Guided Feature Distillation for
Multimodal Recommendation", ACM MM 2023, https://arxiv.org/abs/2308.03113, Sec. 3.2; restated in
``../shared/docs/methods.md``, "SGFD").

Both map (n, d_m) raw features to (n, d) L2-normalised features; the public code puts a LeakyReLU
before the normalisation, and so do these.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def register_features(module: nn.Module, features: dict) -> dict[str, int]:
    """Keep each modality's (I, d_m) features on ``module`` as a non-persistent buffer
    ``feat_<m>`` (moves with the module, not saved with it); return m -> d_m, sorted by name."""
    dims = {}
    for m in sorted(features):
        x = torch.tensor(np.asarray(features[m]), dtype=torch.float32)
        module.register_buffer(f"feat_{m}", x, persistent=False)
        dims[m] = int(x.shape[1])
    return dims


def split_feature_hparams(payload: dict, features: dict | None, who: str) -> tuple[dict, dict]:
    """(saved hparams without ``feature_dims``, the dataset's features it needs) for rebuilding a
    model that keeps its features as buffers; a clear error when the dataset lacks one."""
    h = dict(payload["hparams"])
    dims = h.pop("feature_dims")
    if features is None or set(dims) - set(features):
        raise ValueError(f"{who} needs its dataset's modality features {sorted(dims)}")
    return h, {m: features[m] for m in dims}


def shrinking_dims(d_in: int, d_out: int, factor: int = 4) -> list[int]:
    """Layer widths of the teacher stack: d_in, d_in/4, d_in/16, ... while above d_out, then d_out.

    Example::

        shrinking_dims(4096, 64)  # [4096, 1024, 256, 64]
        shrinking_dims(96, 32)    # [96, 32]
    """
    dims = [d_in]
    while dims[-1] // factor > d_out:
        dims.append(dims[-1] // factor)
    dims.append(d_out)
    return dims


class TeacherExtractor(nn.Module):
    """SGFD's teacher T_m: a stack of linears shrinking 4x per layer down to d,
    ``f^t = normalize(LeakyReLU(W_L ... W_1 x))``.

    Args:
        d_in: d_m.
        d_out: d.

    Example::

        t = TeacherExtractor(256, 8)   # 256 -> 64 -> 16 -> 8
        t(torch.randn(5, 256)).shape   # (5, 8), unit rows
    """

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        dims = shrinking_dims(d_in, d_out)
        self.layers = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(F.leaky_relu(self.layers(x)), dim=-1)


class StudentExtractor(nn.Module):
    """SGFD's student S_m: one linear, ``f^s = normalize(LeakyReLU(W x + b))``; what the backbone
    consumes and what is served.

    Example::

        s = StudentExtractor(256, 8)
        s(torch.randn(5, 256)).shape   # (5, 8), unit rows
    """

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.in_features = d_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(F.leaky_relu(self.linear(x)), dim=-1)
