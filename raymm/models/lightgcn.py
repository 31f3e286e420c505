"""LightGCN: the ID-only graph recommender (PromptMM's student)."""

from __future__ import annotations

import torch
from torch import nn

from raymm.models.propagation import layers_at_seeds, mean_of_layers, mean_of_layers_full
from raymm.models.registry import register
from raymm.sampling import Batch
from raymm.sparse import SparseAdj


@register("lightgcn", version=1)
class LightGCN(nn.Module):
    r"""LightGCN from "LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation" (He et al., SIGIR 2020, https://arxiv.org/abs/2002.02126).

    Propagation (eq. 3) and layer combination (eq. 4), with :math:`\tilde A = D^{-1/2} A D^{-1/2}`
    over the symmetric user-item training graph:

    .. math::
        E^{(l+1)} = \tilde A E^{(l)}, \qquad e = \frac{1}{L+1} \sum_{l=0}^{L} E^{(l)}

    On sampled neighbourhoods :math:`\tilde A` is replaced by the unbiased block weights of
    :mod:`raymm.sampling`. This is PromptMM's student (Wei et al., WWW 2024, Sec. 3.3): two
    embedding tables, no modality encoder.

    Args:
        num_users: U.
        num_items: I.
        dim: embedding size d.
        num_layers: L.
        init_std: std of the normal initialisation.
        normalization: ``symmetric`` or ``left`` (parity), recorded so inference uses the same adjacency.

    Example::

        model = LightGCN(num_users=5, num_items=7, dim=3, num_layers=2)
        adj = graph.normalized_adjacency()          # (12, 12)
        users, items = model.full_embeddings(adj)   # (5, 3), (7, 3)
    """

    def __init__(self, num_users: int, num_items: int, dim: int, num_layers: int, init_std: float = 0.1,
                 normalization: str = "symmetric"):
        super().__init__()
        self.num_users, self.num_items, self.dim, self.num_layers = num_users, num_items, dim, num_layers
        self.normalization = normalization  # of the adjacency it was trained with (recorded for inference)
        self.embedding = nn.Embedding(num_users + num_items, dim)
        nn.init.normal_(self.embedding.weight, std=init_std)

    def hparams(self) -> dict:
        return {"num_users": self.num_users, "num_items": self.num_items, "dim": self.dim,
                "num_layers": self.num_layers, "normalization": self.normalization}

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings of a batch's seed nodes.

        Returns:
            seeds (S, d) final embeddings, ego (S, d) layer-0 embeddings (for the L2 penalty).
        """
        adj = batch.full_adj
        if adj is not None:  # every node is a seed: whole-table propagation
            h0 = self.embedding.weight
            return mean_of_layers_full(h0, adj, self.num_layers), h0
        num_seeds = len(batch.seeds)
        layers = layers_at_seeds(self.embedding(batch.input_nid(self.num_layers)), batch.layers(self.num_layers),
                                 num_seeds)
        return mean_of_layers(layers), layers[0]

    @torch.no_grad()
    def full_embeddings(self, adj: SparseAdj) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-wise full-graph inference: ((U, d) users, (I, d) items)."""
        e = mean_of_layers_full(self.embedding.weight, adj, self.num_layers)
        return e[: self.num_users], e[self.num_users:]
