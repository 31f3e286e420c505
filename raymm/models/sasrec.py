"""SASRec: self-attentive sequential recommendation (Kang and McAuley, ICDM 2018,
https://arxiv.org/abs/1808.09781, Sec. III).

Windows are (B, L) item ids shifted by one, 0 = padding, left-padded (:mod:`raymm.sequences`).
"""

from __future__ import annotations

import torch
from torch import nn

from raymm.models.registry import register


def causal_mask(windows: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B * heads, L, L) bool attention mask, True = may NOT attend: position i sees positions
    j <= i that are not padding (a padding position sees only itself, so no row is empty)."""
    b, length = windows.shape
    ar = torch.arange(length, device=windows.device)
    future = ar[None, :] > ar[:, None]  # (L, L) j > i
    pad_key = (windows == 0)[:, None, :]  # (B, 1, L)
    self_only = torch.eye(length, dtype=torch.bool, device=windows.device)[None]
    blocked = future[None] | (pad_key & ~self_only)  # (B, L, L)
    return blocked.repeat_interleave(num_heads, dim=0)


class CausalBlock(nn.Module):
    """One self-attention block, eq. (4)-(7): ``x + Dropout(SA(LN(x)))`` then
    ``x + Dropout(FFN(LN(x)))`` with FFN = Linear, ReLU, Dropout, Linear; (B, L, d) -> (B, L, d)."""

    def __init__(self, dim: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """``last_only``: only the last position's output, (B, 1, d) (its keys and values still come
        from every position); the same values as ``forward(x, mask)[:, -1:]`` at a fraction of the cost."""
        h = self.norm1(x)
        q, x, mask = (h[:, -1:], x[:, -1:], mask[:, -1:]) if last_only else (h, x, mask)
        x = x + self.drop(self.attn(q, h, h, attn_mask=mask, need_weights=False)[0])
        return x + self.drop(self.ffn(self.norm2(x)))


class CausalEncoder(nn.Module):
    """Positions plus ``num_blocks`` causal blocks plus a final LayerNorm (SASRec's sequence
    encoder, eq. 2-7): (B, L, d) item vectors and (B, L) windows -> (B, L, d) hidden states."""

    def __init__(self, dim: int, max_len: int, num_blocks: int, num_heads: int, dropout: float, init_std: float):
        super().__init__()
        self.num_heads = num_heads
        self.pos_emb = nn.Embedding(max_len, dim)
        nn.init.normal_(self.pos_emb.weight, std=init_std)
        self.blocks = nn.ModuleList(CausalBlock(dim, num_heads, dropout) for _ in range(num_blocks))
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def embed(self, items: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """Item vectors plus positions, dropout, zero at padding."""
        x = items + self.pos_emb.weight[None, -windows.shape[1]:]
        return self.drop(x) * (windows != 0).unsqueeze(-1)

    def encode(self, x: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        mask = causal_mask(windows, self.num_heads)
        keep = (windows != 0).unsqueeze(-1)
        for block in self.blocks:
            x = block(x, mask) * keep
        return self.norm(x)

    def forward(self, items: torch.Tensor, windows: torch.Tensor, all_positions: bool = False) -> torch.Tensor:
        """(B, L, d) item vectors, (B, L) windows -> (B, d) state at the last position (equal to
        ``encode(embed(...))[:, -1]``; the last block computes only that position's query and FFN),
        or with ``all_positions`` (B, L, d) the state at every position (training)."""
        x = self.embed(items, windows)
        if all_positions:
            return self.encode(x, windows)
        mask = causal_mask(windows, self.num_heads)
        keep = (windows != 0).unsqueeze(-1)
        for block in self.blocks[:-1]:
            x = block(x, mask) * keep
        if self.blocks:
            x = self.blocks[-1](x, mask, last_only=True) * keep[:, -1:]
        return self.norm(x)[:, -1]


@register("sasrec", version=1)
class SASRec(nn.Module):
    r"""Item embeddings M plus learned positions P (eq. 1-2), ``num_blocks`` causal blocks, a final
    LayerNorm (:class:`CausalEncoder`); the hidden state at the last position is the user's state
    F, and item i scores :math:`r_i = \langle F, M_i \rangle` (eq. 9, shared item embeddings).

    Args:
        num_items: I (rows 1..I of the embedding; row 0 is padding).
        dim: d.
        max_len: L, window length.
        num_blocks, num_heads, dropout: the blocks' sizes and dropout rate.
        init_std: std of the item and position embeddings' normal initialisation.

    Example::

        model = SASRec(num_items=50, dim=16, max_len=8)
        scores = model.score(torch.tensor([[0, 0, 3, 7, 9, 2, 5, 1]]))   # (1, 50)
    """

    def __init__(self, num_items: int, dim: int, max_len: int, num_blocks: int = 2, num_heads: int = 1,
                 dropout: float = 0.2, init_std: float = 0.02):
        super().__init__()
        self.num_items, self.dim, self.max_len = num_items, dim, max_len
        self.num_blocks, self.num_heads, self.dropout_rate = num_blocks, num_heads, dropout
        self.item_emb = nn.Embedding(num_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.encoder = CausalEncoder(dim, max_len, num_blocks, num_heads, dropout, init_std)

    def hparams(self) -> dict:
        return {"num_items": self.num_items, "dim": self.dim, "max_len": self.max_len,
                "num_blocks": self.num_blocks, "num_heads": self.num_heads, "dropout": self.dropout_rate}

    @classmethod
    def from_payload(cls, payload: dict, features: dict | None) -> "SASRec":
        model = cls(**payload["hparams"])
        model.load_state_dict(payload["state_dict"])
        return model

    def item_vectors(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, L) windows -> (B, L, d) item embeddings M (subclasses may fuse more into them)."""
        return self.item_emb(windows)

    def embed(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, L) windows -> (B, L, d) input embeddings M + P, zero at padding."""
        return self.encoder.embed(self.item_vectors(windows), windows)

    def encode(self, x: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """(B, L, d) embedded windows -> (B, L, d) hidden states (each position sees only the past)."""
        return self.encoder.encode(x, windows)

    def forward(self, windows: torch.Tensor, all_positions: bool = False) -> torch.Tensor:
        """(B, L) windows -> (B, d) state at the last position, or (B, L, d) at every position."""
        return self.encoder(self.item_vectors(windows), windows, all_positions)

    def item_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """(n,) item ids (not shifted) -> (n, d) output item vectors."""
        return self.item_vectors(ids + 1)

    def item_table(self) -> torch.Tensor:
        """(I, d) item embeddings (row i = item i)."""
        return self.item_emb.weight[1:]

    def score(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, L) windows -> (B, I) scores of every item as the next one."""
        return self(windows) @ self.item_table().T
