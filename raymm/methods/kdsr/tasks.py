"""KDSR's single stage: SASRec with gated modality fusion, trained with next-item CE plus, per
modality m, ``w_h,m * holistic + w_c,m * code`` (Hu et al., ECIR 2024, eq. for the total loss;
weights (4, 4, 0.5, 0.5) for image and text as in the spec), modality tables at lr / 4."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raymm.methods.kdsr.losses import (code_loss, holistic_loss, nearest_code, sample_window_pairs,
                                       subspace_cosines)
from raymm.methods.sequential import SequentialTask
from raymm.models.kdsr import KDSRRec


class KDSRTraining(nn.Module):
    """Training container: the served recommender plus the student heads that only training uses:
    per modality the correlation projection C_m (holistic) and the code MLP (|h_i - h_j| -> K logits)."""

    def __init__(self, rec: KDSRRec, holistic: bool, num_codes: int | None):
        super().__init__()
        self.rec = rec
        dims = {m: rec.tables[m].embedding_dim for m in rec.modalities}
        self.correlate = nn.ModuleDict({m: nn.Linear(d, rec.dim) for m, d in dims.items()}) if holistic else None
        self.code_mlp = (nn.ModuleDict({m: nn.Sequential(nn.Linear(d, rec.dim), nn.ReLU(), nn.Linear(rec.dim, num_codes))
                                        for m, d in dims.items()}) if num_codes else None)

    def forward(self, windows: torch.Tensor, all_positions: bool = False) -> torch.Tensor:
        return self.rec(windows, all_positions)


class KDSRTask(SequentialTask):
    def build(self) -> nn.Module:
        o = self.options()
        rec = KDSRRec(self.graph.num_items, self.cfg.model.embedding_dim, o.max_len, self.shared.features,
                      o.num_blocks, o.num_heads, o.dropout, self.cfg.model.init_std)
        centres = self.shared.extras.get("kdsr_codes")
        return KDSRTraining(rec, o.holistic, len(next(iter(centres.values()))) if centres else None)

    def ranking_module(self) -> nn.Module:
        return self.module.rec

    def optimizer(self, params) -> torch.optim.Optimizer:
        slow = {id(p) for p in self.module.rec.modality_table_parameters()}
        lr = self.cfg.train.lr
        return torch.optim.Adam([{"params": [p for p in params if id(p) not in slow], "lr": lr},
                                 {"params": [p for p in params if id(p) in slow],
                                  "lr": lr / self.options().slow_lr_divisor}])

    def setup(self, rank: int, world: int, device) -> None:
        super().setup(rank, world, device)
        pad = {m: np.vstack([np.zeros((1, x.shape[1]), np.float32), x]) for m, x in self.shared.features.items()}
        self.frozen = {m: torch.from_numpy(x).to(device) for m, x in pad.items()}  # row = shifted item id
        self.centres = {m: torch.tensor(c).to(device) for m, c in self.shared.extras.get("kdsr_codes", {}).items()}
        self.weights = self.options().weights_for(self.module.rec.modalities)

    def loss(self, model, batch):
        total, parts = super().loss(model, batch)
        o, training = self.options(), self.module
        rec, w = training.rec, batch.windows
        mask = w != 0
        for m in rec.modalities:
            w_h, w_c = self.weights[m]
            h = rec.tables[m](w)  # (B, L, d_m) the student's modality embeddings
            if training.correlate is not None:
                hol = holistic_loss(training.correlate[m](h), self.frozen[m][w], mask, o.tau)
                total = total + batch.weight * w_h * hol
                parts[f"holistic_{m}"] = hol.item()
            if training.code_mlp is not None:
                a, b = sample_window_pairs(w, o.pairs_per_window, self.generator)
                with torch.no_grad():
                    target = nearest_code(subspace_cosines(self.frozen[m][a], self.frozen[m][b], o.num_subspaces),
                                          self.centres[m])
                logits = training.code_mlp[m]((rec.tables[m](a) - rec.tables[m](b)).abs())
                code = code_loss(logits, target)
                total = total + batch.weight * w_c * code
                parts[f"code_{m}"] = code.item()
        return total, parts

    @classmethod
    def loss_label(cls, cfg) -> str:
        o = cfg.method.kdsr
        return "next-item CE" + (" + holistic" if o.holistic else "") + (" + codes" if o.codes else "")
