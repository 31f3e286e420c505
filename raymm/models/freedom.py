"""FREEDOM (Zhou and Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for
Multimodal Recommendation", ACM MM 2023, https://arxiv.org/abs/2211.06924). Details the paper leaves
open follow its public code (enoche/FREEDOM, ``src/models/freedom.py``).

With modalities m, item features X^m (I, d_m), ID embeddings E (users and items):

    (1) A^m_ij = 1 if j is among the k items most cosine-similar to i (i itself included), else 0
    (2) S = sum_m alpha_m D_m^-1/2 A^m D_m^-1/2,  D_m = diag(row sums of A^m) (= k)   frozen item graph
    (3) h~ = S^{L_ii} E_items                                                        item-item convolution
    (4) e_bar = mean_{l=0..L} A_hat^l E   on the user-item graph with degree-sensitive edge pruning
        (each epoch keeps (1 - rho)|R| edges drawn without replacement with probability
        proportional to 1 / sqrt(d_u d_i), re-normalised; :func:`degree_sensitive_prune`);
        ranking uses the whole graph
    (5) e_u = e_bar_u,  e_i = e_bar_i + h~_i
    (6) L = BPR(e_u, e_i) + lambda sum_m BPR(e_u, W_m x^m_i + b_m)

The item graph is built once from the features (:func:`item_knn_graph`) and frozen. On a batch,
(3) runs on the batch items' own kNN neighbourhoods, expanded L_ii times (k is the fan-out, so it
is exact), or over every item when that is cheaper (:func:`~raymm.models.item_graph.propagate`),
and (4) on the sampled blocks of :mod:`raymm.sampling` over the pruned graph.

Unlike the public code, the raw features stay fixed (it fine-tunes them through the modality BPR
term); W_m and b_m learn. As a distillation teacher (:class:`~raymm.models.promptmm.TeacherOutput`)
its per-modality embeddings are f^m_u = e_u for users and W_m x^m_i + b_m for items, so a
modality's user-item score is the one its BPR term in (6) trains.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raymm.graph import TrainGraph
from raymm.models.extractors import register_features, split_feature_hparams
from raymm.models.item_graph import csr, knn, propagate
from raymm.models.promptmm import TeacherOutput
from raymm.models.propagation import mean_of_layers_full, mean_of_layers_sampled
from raymm.models.registry import register
from raymm.sampling import Batch
from raymm.sparse import SparseAdj


def item_knn_graph(features: dict[str, np.ndarray], k: int, weights: dict[str, float] | None = None,
                   chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frozen item-item graph S of (1)-(2) as CSR ``(indptr (I+1,), indices, values)`` arrays.

    Args:
        features: modality -> (I, d_m) features.
        k: neighbours per item in each modality (the item itself is its own nearest).
        weights: modality -> alpha_m (normalised to sum to 1); None: equal weights.
        chunk: items whose similarities are computed at once (memory ``chunk x I``).
    """
    names = sorted(features)
    alpha = {m: 1.0 for m in names} if weights is None else {m: float(weights[m]) for m in names}
    total = sum(alpha.values())
    rows, cols, vals = [], [], []
    for m in names:
        ids, _ = knn(torch.as_tensor(np.asarray(features[m]), dtype=torch.float32), k, chunk)
        rows.append(torch.arange(len(ids)).repeat_interleave(ids.shape[1]))
        cols.append(ids.reshape(-1))
        vals.append(torch.full((ids.numel(),), alpha[m] / total / ids.shape[1]))  # D^-1/2 A D^-1/2, D = k
    n = len(features[names[0]])
    indptr, indices, values = csr(torch.cat(rows), torch.cat(cols), torch.cat(vals), n)  # shared neighbours add
    return indptr.numpy(), indices.numpy(), values.numpy().astype(np.float32)


def degree_sensitive_prune(graph: TrainGraph, drop: float, rng: np.random.Generator) -> TrainGraph:
    """FREEDOM's denoised user-item graph (4): keep ``int((1 - drop) |R|)`` of the training edges,
    drawn without replacement with probability proportional to ``1 / sqrt(d_u d_i)`` (full-graph
    degrees), as a new :class:`TrainGraph` (whose degrees, and so normalisation, are the kept ones).
    Weighted sampling without replacement by exponential keys (Efraimidis and Spirakis 2006): the
    ``n`` smallest ``-log(U) / w``."""
    users, items = graph.interactions()
    if drop <= 0 or not len(users):
        return graph
    w = 1.0 / np.sqrt(graph.degree[users].astype(np.float64) * graph.degree[items + graph.num_users])
    keep = int(len(users) * (1.0 - drop))
    keys = -np.log(rng.random(len(users))) / w
    chosen = np.argpartition(keys, keep)[:keep] if keep < len(users) else np.arange(len(users))
    return TrainGraph.from_interactions(users[chosen], items[chosen], graph.num_users, graph.num_items)


@register("freedom", version=1)
class Freedom(nn.Module):
    """FREEDOM; see the module docstring for equations (1)-(6).

    Args:
        num_users: U.
        num_items: I.
        features: modality -> (I, d_m) features (non-persistent buffers: not saved).
        item_graph: S as CSR ``(indptr, indices, values)`` (:func:`item_knn_graph`; rebuilt from
            the features when a saved model loads).
        dim: d.
        num_layers: L, LightGCN layers on the user-item graph.
        item_layers: L_ii, item-item convolutions.
        knn_k, modality_weights: how ``item_graph`` was built (recorded to rebuild it).
        init_std: std of the ID embeddings' normal initialisation.
        normalization: user-item adjacency normalisation (recorded for inference).

    Example::

        model = Freedom(5, 7, feats, item_knn_graph(feats, 3), dim=8, num_layers=2)
        out = model(batch)                     # TeacherOutput at the batch's seeds
        users, items = model.full_embeddings(adj)
    """

    prompt = None  # a teacher without a soft prompt

    def __init__(self, num_users: int, num_items: int, features: dict, item_graph, dim: int, num_layers: int,
                 item_layers: int = 1, knn_k: int = 10, modality_weights: dict[str, float] | None = None,
                 init_std: float = 0.1, normalization: str = "symmetric"):
        super().__init__()
        if not features:
            raise ValueError("FREEDOM needs at least one modality (the dataset has none)")
        self.num_users, self.num_items, self.dim, self.num_layers = num_users, num_items, dim, num_layers
        self.item_layers, self.knn_k, self.modality_weights = item_layers, knn_k, modality_weights
        self.normalization = normalization
        self.modalities = sorted(features)
        self.embedding = nn.Embedding(num_users + num_items, dim)
        nn.init.normal_(self.embedding.weight, std=init_std)
        self.projections = nn.ModuleDict({m: nn.Linear(d_m, dim) for m, d_m in register_features(self, features).items()})
        indptr, indices, values = item_graph
        self.register_buffer("ii_indptr", torch.as_tensor(np.asarray(indptr), dtype=torch.int64), persistent=False)
        self.register_buffer("ii_indices", torch.as_tensor(np.asarray(indices), dtype=torch.int64), persistent=False)
        self.register_buffer("ii_values", torch.as_tensor(np.asarray(values), dtype=torch.float32), persistent=False)

    def hparams(self) -> dict:
        return {"num_users": self.num_users, "num_items": self.num_items, "dim": self.dim,
                "num_layers": self.num_layers, "item_layers": self.item_layers, "knn_k": self.knn_k,
                "modality_weights": self.modality_weights, "normalization": self.normalization,
                "feature_dims": {m: int(self.projections[m].in_features) for m in self.modalities}}

    @classmethod
    def from_payload(cls, payload: dict, features: dict | None) -> "Freedom":
        h, feats = split_feature_hparams(payload, features, "FREEDOM")
        model = cls(features=feats, item_graph=item_knn_graph(feats, h["knn_k"], h["modality_weights"]), **h)
        model.load_state_dict(payload["state_dict"])
        return model

    def features(self, m: str) -> torch.Tensor:
        return getattr(self, f"feat_{m}")

    # --- item-item convolution (3) -------------------------------------------------------------
    def _item_conv(self, items: torch.Tensor | None) -> torch.Tensor:
        """(n, d) rows ``items`` of S^{L_ii} E_items (None: every item), from the items' kNN
        neighbourhoods or over every item, whichever is cheaper (exact either way)."""
        graph, table = (self.ii_indptr, self.ii_indices, self.ii_values), self.embedding.weight[self.num_users:]
        return propagate(graph, table, items, self.item_layers)

    # --- forward ---------------------------------------------------------------------------
    def forward(self, batch: Batch) -> TeacherOutput:
        """Outputs at the seeds of a batch (L blocks of the pruned user-item graph)."""
        num_seeds = len(batch.seeds)
        nid = batch.input_nid(self.num_layers)
        ego_all = self.embedding(nid)
        emb = mean_of_layers_sampled(ego_all, batch.layers(self.num_layers), num_seeds)
        is_item = batch.seeds >= self.num_users
        items = batch.seeds[is_item] - self.num_users
        emb = emb.index_add(0, torch.nonzero(is_item).squeeze(1), self._item_conv(items))
        modal = {}
        for m in self.modalities:
            f = emb.clone()
            f[is_item] = self.projections[m](self.features(m)[items])
            modal[m] = f
        return TeacherOutput(emb, ego_all[:num_seeds], modal, None)

    def full(self, adj: SparseAdj) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Full-graph inference: ((N, d) e, m -> (N, d) f^m) for all N = U + I nodes."""
        emb = mean_of_layers_full(self.embedding.weight, adj, self.num_layers)
        emb = torch.cat([emb[:self.num_users], emb[self.num_users:] + self._item_conv(None)])
        modal = {m: torch.cat([emb[:self.num_users], self.projections[m](self.features(m))]) for m in self.modalities}
        return emb, modal

    @torch.no_grad()
    def full_embeddings(self, adj: SparseAdj) -> tuple[torch.Tensor, torch.Tensor]:
        """((U, d) users, (I, d) items), for ranking."""
        emb, _ = self.full(adj)
        return emb[: self.num_users], emb[self.num_users:]
