"""LATTICE (Zhang, Zhu, Liu, Wu, Wang and Wang, "Mining Latent Structures for Multimedia
Recommendation", ACM MM 2021, https://arxiv.org/abs/2104.09036). Details the paper leaves open
follow its public code (CRIPAC-DIG/LATTICE, ``codes/Models.py``, LightGCN backbone).

With modalities m, item features X^m (I, d_m), ID embeddings E (users and items), k, lambda:

    (1) S^m_ij = cos(x_i^m, x_j^m) on each row's top-k, else 0;  A^m = D^-1/2 S^m D^-1/2   original (fixed)
    (2) x~^m = W_m x^m + b_m;  S~^m from x~^m as in (1)                                    learned
    (3) w = softmax(omega) over modalities (omega learned)
    (4) A = (1 - lambda) norm(sum_m w_m S~^m) + lambda sum_m w_m A^m                     the item graph
    (5) h = A^{L_ii} E_items;   e_bar = mean_{l=0..L} A_hat^l E (LightGCN, user-item graph)
    (6) e_u = e_bar_u,  e_i = e_bar_i + h_i / ||h_i||
    (7) L = BPR(e_u, e_i) (+ L2 on the batch's ID embeddings)

norm: D^-1/2 . D^-1/2 with D the row sums. As in the public code, the learned graph (2)-(4) is built
with gradients at the first training step of each epoch (which trains W_m, b_m and omega) and used
detached for the epoch's other steps. Ranking builds it from the current weights. The kNN choice
itself has no gradient (as ``topk``): the similarities of the chosen pairs carry it.

On a batch, (5) runs on the batch items' neighbourhoods in A, or over every item when that is
cheaper (:func:`~raymm.models.item_graph.propagate`; exact either way), LightGCN on the sampled
blocks. Unlike the public code, the raw features
stay fixed (it fine-tunes them).

As a distillation teacher (:class:`~raymm.models.promptmm.TeacherOutput`), modality m's item
embedding is f^m_i = e_bar_i + h^m_i / ||h^m_i|| with h^m from modality m's graph alone,
A^m_own = (1 - lambda) norm(S~^m) + lambda A^m, and f^m_u = e_u: what LATTICE would score with one
modality.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raymm.models.extractors import register_features, split_feature_hparams
from raymm.models.item_graph import csr, knn, propagate, symmetric_normalize
from raymm.models.promptmm import TeacherOutput
from raymm.models.propagation import mean_of_layers_full, mean_of_layers_sampled
from raymm.models.registry import register
from raymm.sampling import Batch
from raymm.sparse import SparseAdj


def _knn_entries(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, cols, cosine similarities) of each row's top-k; the similarities keep ``x``'s autograd graph."""
    ids, _ = knn(x.detach(), k)
    rows = torch.arange(len(ids), device=x.device).repeat_interleave(ids.shape[1])
    cols = ids.reshape(-1)
    xn = F.normalize(x, dim=1)
    return rows, cols, (xn[rows] * xn[cols]).sum(-1)


@register("lattice", version=1)
class Lattice(nn.Module):
    """LATTICE; see the module docstring for equations (1)-(7).

    Args:
        num_users: U.
        num_items: I.
        features: modality -> (I, d_m) features (non-persistent buffers: not saved).
        dim: d (also the width of the projected features x~).
        num_layers: L, LightGCN layers on the user-item graph.
        item_layers: L_ii.
        knn_k: k.
        lambda_coeff: lambda, the weight of the original graphs in (4).
        init_std: std of the ID embeddings' normal initialisation.
        normalization: user-item adjacency normalisation (recorded for inference).
    """

    prompt = None  # a teacher without a soft prompt

    def __init__(self, num_users: int, num_items: int, features: dict, dim: int, num_layers: int,
                 item_layers: int = 1, knn_k: int = 10, lambda_coeff: float = 0.9, init_std: float = 0.1,
                 normalization: str = "symmetric"):
        super().__init__()
        if not features:
            raise ValueError("LATTICE needs at least one modality (the dataset has none)")
        self.num_users, self.num_items, self.dim, self.num_layers = num_users, num_items, dim, num_layers
        self.item_layers, self.knn_k, self.lambda_coeff, self.normalization = item_layers, knn_k, lambda_coeff, normalization
        self.modalities = sorted(features)
        self.embedding = nn.Embedding(num_users + num_items, dim)
        nn.init.normal_(self.embedding.weight, std=init_std)
        self.projections = nn.ModuleDict({m: nn.Linear(d_m, dim) for m, d_m in register_features(self, features).items()})
        self.omega = nn.Parameter(torch.full((len(self.modalities),), 0.5))
        for m in self.modalities:  # (1): fixed, from the raw features
            rows, cols, sims = _knn_entries(self.features(m), knn_k)
            vals = symmetric_normalize(rows, cols, sims, num_items)
            for name, t in zip(("rows", "cols", "vals"), (rows, cols, vals)):
                self.register_buffer(f"orig_{m}_{name}", t, persistent=False)
        self.rebuild = True  # build the learned graph with gradients at the next training step
        self._graphs = None  # (fused, per modality) graphs as CSR, detached between rebuilds

    def hparams(self) -> dict:
        return {"num_users": self.num_users, "num_items": self.num_items, "dim": self.dim,
                "num_layers": self.num_layers, "item_layers": self.item_layers, "knn_k": self.knn_k,
                "lambda_coeff": self.lambda_coeff, "normalization": self.normalization,
                "feature_dims": {m: int(self.projections[m].in_features) for m in self.modalities}}

    @classmethod
    def from_payload(cls, payload: dict, features: dict | None) -> "Lattice":
        h, feats = split_feature_hparams(payload, features, "LATTICE")
        model = cls(features=feats, **h)
        model.load_state_dict(payload["state_dict"])
        return model

    def features(self, m: str) -> torch.Tensor:
        return getattr(self, f"feat_{m}")

    def _original(self, m: str):
        return tuple(getattr(self, f"orig_{m}_{name}") for name in ("rows", "cols", "vals"))

    # --- the item graphs (1)-(4) ---------------------------------------------------------------
    def build_graphs(self) -> tuple[tuple, dict[str, tuple]]:
        """(A of (4), m -> modality m's own graph) as CSR tensors, differentiable in W_m, b_m, omega."""
        n, lam = self.num_items, self.lambda_coeff
        w = torch.softmax(self.omega, 0)
        learned, own = [], {}
        for j, m in enumerate(self.modalities):
            rows, cols, sims = _knn_entries(self.projections[m](self.features(m)), self.knn_k)
            learned.append((rows, cols, w[j] * sims))
            o_rows, o_cols, o_vals = self._original(m)
            own[m] = csr(torch.cat([rows, o_rows]), torch.cat([cols, o_cols]),
                         torch.cat([(1 - lam) * symmetric_normalize(rows, cols, sims, n), lam * o_vals]), n)
        rows, cols, vals = (torch.cat(parts) for parts in zip(*learned))
        fused_learned = symmetric_normalize(rows, cols, vals, n)  # duplicates add inside the row sums too
        o = [self._original(m) for m in self.modalities]
        fused = csr(torch.cat([rows] + [r for r, _, _ in o]), torch.cat([cols] + [c for _, c, _ in o]),
                    torch.cat([(1 - lam) * fused_learned] + [lam * w[j] * v for j, (_, _, v) in enumerate(o)]), n)
        return fused, own

    def _current_graphs(self):
        """Training: built with gradients when :attr:`rebuild` is set (each epoch), else the last
        ones, detached. Evaluation: built once from the current weights, without gradients."""
        if self.training:
            if self.rebuild or self._graphs is None:
                graphs = self.build_graphs()
                self.rebuild, self._graphs = False, _detached(graphs)
                return graphs
            return self._graphs
        if self._graphs is None:
            with torch.no_grad():
                self._graphs = self.build_graphs()
        return self._graphs

    def train(self, mode: bool = True) -> "Lattice":
        if mode != self.training:
            self._graphs = None  # graphs built in one mode are not reused in the other
            self.rebuild = True
        return super().train(mode)

    # --- forward ---------------------------------------------------------------------------
    def _item_side(self, graph, items: torch.Tensor | None) -> torch.Tensor:
        """h / ||h|| of (5)-(6) for ``items`` (None: every item)."""
        table = self.embedding.weight[self.num_users:]
        h = propagate(graph, table, items, self.item_layers)
        return F.normalize(h, dim=1)

    def forward(self, batch: Batch) -> TeacherOutput:
        """Outputs at the seeds of a batch (L blocks of the user-item graph)."""
        fused, own = self._current_graphs()
        num_seeds = len(batch.seeds)
        nid = batch.input_nid(self.num_layers)
        ego_all = self.embedding(nid)
        e_bar = mean_of_layers_sampled(ego_all, batch.layers(self.num_layers), num_seeds)
        is_item = batch.seeds >= self.num_users
        pos = torch.nonzero(is_item).squeeze(1)
        items = batch.seeds[is_item] - self.num_users
        emb = e_bar.index_add(0, pos, self._item_side(fused, items))
        modal = {m: e_bar.index_add(0, pos, self._item_side(own[m], items)) for m in self.modalities}
        for f in modal.values():
            f[~is_item] = emb[~is_item]  # f^m_u = e_u
        return TeacherOutput(emb, ego_all[:num_seeds], modal, None)

    def full(self, adj: SparseAdj) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Full-graph inference: ((N, d) e, m -> (N, d) f^m) for all N = U + I nodes."""
        fused, own = self._current_graphs()
        e_bar = mean_of_layers_full(self.embedding.weight, adj, self.num_layers)
        users, items = e_bar[:self.num_users], e_bar[self.num_users:]
        emb = torch.cat([users, items + self._item_side(fused, None)])
        modal = {m: torch.cat([users, items + self._item_side(own[m], None)]) for m in self.modalities}
        return emb, modal

    @torch.no_grad()
    def full_embeddings(self, adj: SparseAdj) -> tuple[torch.Tensor, torch.Tensor]:
        """((U, d) users, (I, d) items), for ranking."""
        emb, _ = self.full(adj)
        return emb[: self.num_users], emb[self.num_users:]

    def graph_parameters(self) -> list[nn.Parameter]:
        """W_m, b_m and omega: trained only at the steps that build the graph (add ``0 x`` their sum
        to other steps' loss, or DDP waits for their gradients)."""
        return [*self.projections.parameters(), self.omega]


def _detached(graphs):
    fused, own = graphs
    return (fused[0], fused[1], fused[2].detach()), {m: (g[0], g[1], g[2].detach()) for m, g in own.items()}
