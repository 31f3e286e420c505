"""LightGCN with modality features added to the item embeddings ("LightGCN-M", VBPR-style)."""

from __future__ import annotations

import torch
from torch import nn

from raymm.models.extractors import StudentExtractor, register_features, split_feature_hparams
from raymm.models.propagation import mean_of_layers_full, mean_of_layers_sampled
from raymm.models.registry import register
from raymm.sampling import Batch
from raymm.sparse import SparseAdj


@register("lightgcn_m", version=1)
class LightGCNM(nn.Module):
    r"""LightGCN (He et al., SIGIR 2020, eq. 3-4) whose layer-0 item embeddings carry the items'
    extracted modality features, as VBPR (He and McAuley, AAAI 2016, eq. 2) adds visual factors to
    the item factors:

    .. math::
        e^{(0)}_u = E_u, \qquad e^{(0)}_i = E_i + w \sum_m S_m(x^m_i), \qquad
        e = \frac{1}{L+1} \sum_{l=0}^{L} \tilde A^l e^{(0)}

    ``S_m`` is SGFD's student extractor (one linear, L2-normalised), the part SGFD distils into
    (Liu et al., ACM MM 2023); trained without SGFD's losses this is the plain backbone.

    Args:
        num_users: U.
        num_items: I.
        features: modality -> (I, d_m) features (non-persistent buffers: not in the saved state).
        dim: d.
        num_layers: L.
        feature_weight: w.
        init_std: std of the ID embeddings' normal initialisation.
        normalization: adjacency normalisation (recorded for inference).

    Example::

        model = LightGCNM(5, 7, {"image": torch.randn(7, 16)}, dim=8, num_layers=2)
        users, items = model.full_embeddings(adj)   # (5, 8), (7, 8)
    """

    def __init__(self, num_users: int, num_items: int, features: dict[str, torch.Tensor], dim: int, num_layers: int,
                 feature_weight: float = 1.0, init_std: float = 0.1, normalization: str = "symmetric"):
        super().__init__()
        if not features:
            raise ValueError("LightGCN-M needs at least one modality")
        self.num_users, self.num_items, self.dim, self.num_layers = num_users, num_items, dim, num_layers
        self.feature_weight, self.normalization = feature_weight, normalization
        self.modalities = sorted(features)
        self.embedding = nn.Embedding(num_users + num_items, dim)
        nn.init.normal_(self.embedding.weight, std=init_std)
        self.extractors = nn.ModuleDict({m: StudentExtractor(d_m, dim)
                                         for m, d_m in register_features(self, features).items()})

    def hparams(self) -> dict:
        return {"num_users": self.num_users, "num_items": self.num_items, "dim": self.dim,
                "num_layers": self.num_layers, "feature_weight": self.feature_weight,
                "normalization": self.normalization,
                "feature_dims": {m: int(self.extractors[m].in_features) for m in self.modalities}}

    @classmethod
    def from_payload(cls, payload: dict, features: dict | None) -> "LightGCNM":
        h, feats = split_feature_hparams(payload, features, "LightGCN-M")
        model = cls(features=feats, **h)
        model.load_state_dict(payload["state_dict"])
        return model

    def features(self, m: str) -> torch.Tensor:
        return getattr(self, f"feat_{m}")

    def item_features(self, item_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """m -> (n, d) student features S_m(x^m) of the given items."""
        return {m: self.extractors[m](self.features(m)[item_ids]) for m in self.modalities}

    def _layer0(self, node_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """((n, d) e^(0), (n, d) E) of graph nodes (users first, then items offset by U)."""
        ego = self.embedding(node_ids)
        is_item = node_ids >= self.num_users
        extra = sum(self.item_features(node_ids[is_item] - self.num_users).values())
        h0 = ego.clone()
        h0[is_item] = h0[is_item] + self.feature_weight * extra
        return h0, ego

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Seed embeddings (S, d) and their ID embeddings E (S, d) for the L2 penalty."""
        num_seeds = len(batch.seeds)
        h0, ego = self._layer0(batch.input_nid(self.num_layers))
        return mean_of_layers_sampled(h0, batch.layers(self.num_layers), num_seeds), ego[:num_seeds]

    @torch.no_grad()
    def full_embeddings(self, adj: SparseAdj) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-wise full-graph inference: ((U, d) users, (I, d) items)."""
        nodes = torch.arange(self.num_users + self.num_items, device=self.embedding.weight.device)
        h0, _ = self._layer0(nodes)
        e = mean_of_layers_full(h0, adj, self.num_layers)
        return e[: self.num_users], e[self.num_users:]
