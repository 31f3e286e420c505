"""ODMT's model: an ID-aware multimodal item transformer and one SASRec-style user encoder per
branch (Ji, Liu, Zhang, Wei, Ni and Wang, "Online Distillation-enhanced Multi-modal Transformer for
Sequential Recommendation", ACM MM 2023, https://arxiv.org/abs/2308.04067, Sec. 3; restated in
``../shared/docs/methods.md``, "ODMT"). Losses: :mod:`raymm.methods.odmt.losses`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raymm.models.registry import register
from raymm.models.sasrec import CausalEncoder


def id_aware_mask(num_modalities: int) -> torch.Tensor:
    """(M+1, M+1) bool attention mask over tokens [m_1 .. m_M, ID], True = may NOT attend: modal
    tokens may not attend to the ID token; the ID token attends to all."""
    mask = torch.zeros(num_modalities + 1, num_modalities + 1, dtype=torch.bool)
    mask[:num_modalities, num_modalities] = True
    return mask


@register("odmt", version=1)
class ODMTRec(nn.Module):
    r"""Branches b in {ID, m_1 .. m_M}. Item i's tokens are ``[P_1 x^1_i + t_1, ..., P_M x^M_i + t_M,
    E_i + t_ID]`` (frozen features x projected, plus a type embedding t); ``item_layers`` transformer
    layers with :func:`id_aware_mask`; the output of token b through branch b's MLP is item i's
    vector :math:`v^b_i` (the ID token for the ID branch, the modality's token for its branch).
    Branch b's user encoder (a SASRec :class:`CausalEncoder`) reads the window's :math:`v^b` and
    gives the state :math:`s^b`; branch scores :math:`r^b_i = \langle s^b, v^b_i \rangle`; inference
    ranks by their mean.

    Args:
        num_items: I. dim: d. max_len: L.
        features: modality -> (I, d_m) frozen features (persistent buffers: the served model is
            self-contained).
        item_layers, item_heads: the item transformer. num_blocks, num_heads: each user encoder.
        dropout, init_std: as SASRec.

    Example::

        model = ODMTRec(50, 16, 8, {"text": np.random.rand(50, 24).astype("float32")})
        model.score(torch.tensor([[0, 0, 3, 7, 9, 2, 5, 1]]))   # (1, 50): mean of 2 branches
    """

    def __init__(self, num_items: int, dim: int, max_len: int, features: dict[str, np.ndarray], item_layers: int = 2,
                 item_heads: int = 2, num_blocks: int = 2, num_heads: int = 2, dropout: float = 0.2,
                 init_std: float = 0.02):
        super().__init__()
        self.num_items, self.dim, self.max_len = num_items, dim, max_len
        self.item_layers, self.item_heads, self.num_blocks, self.num_heads = item_layers, item_heads, num_blocks, num_heads
        self.dropout_rate = dropout
        self.modalities = sorted(features)
        self.branches = ["id"] + self.modalities
        for m in self.modalities:
            x = np.asarray(features[m], dtype=np.float32)
            self.register_buffer(f"feat_{m}", torch.tensor(np.vstack([np.zeros((1, x.shape[1]), np.float32), x])))
        self.item_emb = nn.Embedding(num_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=init_std)
        self.project = nn.ModuleDict({m: nn.Linear(getattr(self, f"feat_{m}").shape[1], dim) for m in self.modalities})
        self.token_type = nn.Embedding(len(self.modalities) + 1, dim)
        layer = nn.TransformerEncoderLayer(dim, item_heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True,
                                           norm_first=True)
        self.item_transformer = nn.TransformerEncoder(layer, item_layers, enable_nested_tensor=False)
        self.register_buffer("token_mask", id_aware_mask(len(self.modalities)), persistent=False)
        self.mlp = nn.ModuleDict({b: nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
                                  for b in self.branches})
        self.users = nn.ModuleDict({b: CausalEncoder(dim, max_len, num_blocks, num_heads, dropout, init_std)
                                    for b in self.branches})

    def hparams(self) -> dict:
        return {"num_items": self.num_items, "dim": self.dim, "max_len": self.max_len, "item_layers": self.item_layers,
                "item_heads": self.item_heads, "num_blocks": self.num_blocks, "num_heads": self.num_heads,
                "dropout": self.dropout_rate,
                "feature_dims": {m: int(getattr(self, f"feat_{m}").shape[1]) for m in self.modalities}}

    @classmethod
    def from_payload(cls, payload: dict, features: dict | None) -> "ODMTRec":
        h = dict(payload["hparams"])
        dims = h.pop("feature_dims")  # the frozen features travel in the state
        model = cls(features={m: np.zeros((h["num_items"], d), np.float32) for m, d in dims.items()}, **h)
        model.load_state_dict(payload["state_dict"])
        return model

    def item_vectors(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """(n,) shifted item ids (0 = padding) -> branch -> (n, d) item vectors v^b (0 at padding)."""
        types = self.token_type.weight
        tokens = [self.project[m](getattr(self, f"feat_{m}")[ids]) + types[k] for k, m in enumerate(self.modalities)]
        tokens.append(self.item_emb(ids) + types[len(self.modalities)])
        out = self.item_transformer(torch.stack(tokens, 1), mask=self.token_mask)  # (n, M+1, d)
        keep = (ids != 0).unsqueeze(-1)
        vec = {m: self.mlp[m](out[:, k]) * keep for k, m in enumerate(self.modalities)}
        vec["id"] = self.mlp["id"](out[:, -1]) * keep
        return vec

    def states(self, windows: torch.Tensor, all_positions: bool = False,
               candidates: torch.Tensor | None = None):
        """(B, L) windows -> branch -> (B, d) user states s^b at the last position, or (B, L, d) at
        every position with ``all_positions``. With ``candidates`` ((C,) shifted item ids) also
        returns branch -> (C, d) their item vectors, from the same pass.

        The item transformer runs once per distinct item of the batch, not once per position (B x L
        positions hold at most I distinct items); in training an item's dropout draw is therefore
        shared by its occurrences in the batch."""
        flat = windows.reshape(-1)
        if candidates is not None:
            flat = torch.cat([flat, candidates])
        ids, inverse = torch.unique(flat, return_inverse=True)
        vec = self.item_vectors(ids)
        n = windows.numel()
        states = {b: self.users[b](v[inverse[:n]].view(*windows.shape, -1), windows, all_positions)
                  for b, v in vec.items()}
        if candidates is None:
            return states
        return states, {b: v[inverse[n:]] for b, v in vec.items()}

    def forward(self, windows: torch.Tensor, all_positions: bool = False, candidates: torch.Tensor | None = None):
        return self.states(windows, all_positions, candidates)

    def item_table(self, chunk: int = 4096) -> dict[str, torch.Tensor]:
        """branch -> (I, d) vectors of every item."""
        ids = torch.arange(1, self.num_items + 1, device=self.item_emb.weight.device)
        parts = [self.item_vectors(ids[s:s + chunk]) for s in range(0, len(ids), chunk)]
        return {b: torch.cat([p[b] for p in parts]) for b in self.branches}

    def score(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, L) windows -> (B, I) mean over branches of the branch scores."""
        states, table = self.states(windows), self.item_table()
        return torch.stack([states[b] @ table[b].T for b in self.branches]).mean(0)
