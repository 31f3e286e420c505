"""KDSR's student: SASRec over items whose ID embedding is fused with trainable modality embeddings
(Hu, Liu, Li and Kan, "Lightweight Modality Adaptation to Sequential Recommendation via Correlation
Supervision", ECIR 2024, https://arxiv.org/abs/2401.07257, Sec. 3; restated in
``../shared/docs/methods.md``, "KDSR"). The correlation losses are in :mod:`raymm.methods.kdsr.losses`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raymm.models.registry import register
from raymm.models.sasrec import SASRec


@register("kdsr", version=1)
class KDSRRec(SASRec):
    r"""Per modality m a trainable table :math:`H^m` ((I+1, d_m), row i+1 initialised from item i's
    frozen feature :math:`x^m_i`, row 0 padding) and a projection :math:`P_m: d_m \to d`; an item's
    representation is the gated fusion of its ID embedding and the projected modality embeddings
    (the public code's modality gate):

    .. math::
        v_i = \sum_k \alpha_{ik} u_{ik},\quad u_i = [E_i; P_1 h^1_i; \dots],\quad
        \alpha_i = \mathrm{softmax}_k(w_2^\top \mathrm{ReLU}(W_1 u_{ik}))

    used as SASRec's input items and as the output item table (scores :math:`\langle F, v_i\rangle`).
    The student's correlation projections and code predictors are training-only heads
    (:class:`raymm.methods.kdsr.tasks.KDSRTraining`), not part of the served model.

    Args:
        num_items, dim, max_len, num_blocks, num_heads, dropout, init_std: as :class:`SASRec`.
        features: modality -> (I, d_m) frozen features (only their shapes when loading a payload).

    Example::

        model = KDSRRec(50, 16, 8, features={"text": np.random.rand(50, 24).astype("float32")})
        model.score(torch.tensor([[0, 0, 3, 7, 9, 2, 5, 1]]))   # (1, 50)
    """

    def __init__(self, num_items: int, dim: int, max_len: int, features: dict[str, np.ndarray],
                 num_blocks: int = 2, num_heads: int = 1, dropout: float = 0.2, init_std: float = 0.02):
        super().__init__(num_items, dim, max_len, num_blocks, num_heads, dropout, init_std)
        self.modalities = sorted(features)
        self.tables = nn.ModuleDict()
        for m in self.modalities:
            x = torch.tensor(np.asarray(features[m], dtype=np.float32))  # a copy: the source may be read-only
            table = nn.Embedding(num_items + 1, x.shape[1], padding_idx=0)
            with torch.no_grad():
                table.weight.zero_()
                table.weight[1:] = x
            self.tables[m] = table
        self.project = nn.ModuleDict({m: nn.Linear(self.tables[m].embedding_dim, dim) for m in self.modalities})
        self.gate = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def hparams(self) -> dict:
        return {**super().hparams(), "feature_dims": {m: self.tables[m].embedding_dim for m in self.modalities}}

    @classmethod
    def from_payload(cls, payload: dict, features: dict | None) -> "KDSRRec":
        h = dict(payload["hparams"])
        dims = h.pop("feature_dims")  # the trained tables are in the state: no dataset features needed
        model = cls(features={m: np.zeros((h["num_items"], d), np.float32) for m, d in dims.items()}, **h)
        model.load_state_dict(payload["state_dict"])
        return model

    def modality_table_parameters(self) -> list[nn.Parameter]:
        """The modality tables H^m (asynchronous learning trains them slower)."""
        return [self.tables[m].weight for m in self.modalities]

    def fuse(self, ids: torch.Tensor) -> torch.Tensor:
        """(...,) shifted item ids -> (..., d) fused representations v (0 at padding)."""
        parts = [self.item_emb(ids)] + [self.project[m](self.tables[m](ids)) for m in self.modalities]
        u = torch.stack(parts, dim=-2)  # (..., 1 + M, d)
        alpha = torch.softmax(self.gate(u).squeeze(-1), dim=-1)
        return (alpha.unsqueeze(-1) * u).sum(-2) * (ids != 0).unsqueeze(-1)

    def item_vectors(self, windows: torch.Tensor) -> torch.Tensor:
        return self.fuse(windows)

    def item_table(self) -> torch.Tensor:
        return self.fuse(torch.arange(1, self.num_items + 1, device=self.item_emb.weight.device))
