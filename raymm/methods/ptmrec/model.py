"""PTMRec's stage-2 model: the tuned text encoder feeding a LightGCN-M recommender (Zhang et al.,
arXiv 2502.15542; ``../shared/docs/methods.md``, "PTMRec")."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raymm.methods.ptmrec.cache import ItemTextCache
from raymm.models.lightgcn_m import LightGCNM
from raymm.models.registry import register
from raymm.models.text_encoder import DIM, TextEncoder
from raymm.sampling import Batch
from raymm.sparse import SparseAdj

TOKEN_KEYS = ("input_ids", "attention_mask")


class TextFedLightGCNM(LightGCNM):
    """LightGCN-M whose ``text`` features are handed in per call (:attr:`text`, (I, 384)) instead of
    a stored buffer: they come from the encoder being tuned (and carry its gradients)."""

    text: torch.Tensor | None = None

    def features(self, m: str) -> torch.Tensor:
        if self.text is None:
            raise RuntimeError("set .text (the (I, 384) item text vectors) before running the model")
        return self.text


@register("ptmrec", version=1)
class PTMRecModel(nn.Module):
    r"""Item i's layer-0 embedding is :math:`E_i + w\,S(\mathrm{enc}_\theta(\mathrm{text}_i))` with
    :math:`\mathrm{enc}_\theta` all-MiniLM-L6-v2 plus a PEFT adapter θ (:class:`TextEncoder`) and S
    the one-linear projection of LightGCN-M (:class:`~raymm.models.lightgcn_m.LightGCNM`, which
    propagates as LightGCN, He et al. 2020, eq. 3-4). In training the batch's items are encoded
    afresh and the others come from an :class:`ItemTextCache`; ranking re-encodes every item.

    Args:
        num_users, num_items, dim, num_layers, feature_weight, init_std, normalization: LightGCN-M's.
        tokens: ``{"input_ids", "attention_mask"}`` (I, T) int arrays, every item's text (saved with
            the model, so that it can re-encode its items; not buffers, which DDP would broadcast).
        peft, lora_rank, lora_alpha, prompt_tokens: the adapter (:class:`TextEncoder`).
        refresh_every: steps between full re-encodings of the cache.
        fresh_items: at most this many of a batch's items are encoded afresh (with gradients) per
            step, drawn at random; the encoder's activations for backpropagation grow with it.
    """

    def __init__(self, num_users: int, num_items: int, dim: int, num_layers: int, tokens: dict[str, np.ndarray],
                 peft: str = "lora", lora_rank: int = 8, lora_alpha: float = 16.0, prompt_tokens: int = 8,
                 feature_weight: float = 1.0, init_std: float = 0.1, normalization: str = "symmetric",
                 refresh_every: int = 20, fresh_items: int = 256):
        super().__init__()
        self.refresh_every, self.fresh_items = refresh_every, fresh_items
        self.encoder = TextEncoder(peft, lora_rank, lora_alpha, prompt_tokens)
        self.rec = TextFedLightGCNM(num_users, num_items, {"text": np.zeros((1, DIM), np.float32)}, dim, num_layers,
                                    feature_weight, init_std, normalization)
        self.tokens = {k: torch.tensor(np.asarray(tokens[k]), dtype=torch.int32) for k in TOKEN_KEYS}  # a copy: shared arrays are read-only
        self.cache: ItemTextCache | None = None

    @property
    def normalization(self) -> str:
        return self.rec.normalization

    @property
    def num_users(self) -> int:
        return self.rec.num_users

    @property
    def num_items(self) -> int:
        return self.rec.num_items

    def hparams(self) -> dict:
        r = self.rec
        return {"num_users": r.num_users, "num_items": r.num_items, "dim": r.dim, "num_layers": r.num_layers,
                **self.encoder.hparams(), "feature_weight": r.feature_weight, "normalization": r.normalization,
                "refresh_every": self.refresh_every, "fresh_items": self.fresh_items}

    def _cache(self) -> ItemTextCache:
        if self.cache is None:
            self.cache = ItemTextCache(self.tokens, self.refresh_every)
        return self.cache

    def payload_state(self) -> dict:
        """Everything but the encoder's pre-trained base (it comes from the pinned package)."""
        keep = {f"encoder.{k}" for k in self.encoder.payload_state()}
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.") or k in keep}
        return {**state, **{f"tokens.{k}": v for k, v in self.tokens.items()}}

    @classmethod
    def from_payload(cls, payload: dict, features: dict | None) -> "PTMRecModel":
        state = dict(payload["state_dict"])
        model = cls(tokens={k: state.pop(f"tokens.{k}").numpy() for k in TOKEN_KEYS}, **payload["hparams"])
        missing, unexpected = model.load_state_dict(state, strict=False)
        adapters = {f"encoder.{k}" for k in model.encoder.payload_state()}
        bad = [k for k in missing if not k.startswith("encoder.") or k in adapters] + list(unexpected)
        if bad:
            from raymm.errors import ModelMismatchError

            raise ModelMismatchError(f"PTMRec payload does not fit the model: {bad[:4]}")
        return model

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Seed embeddings (S, d), their ID embeddings (S, d), the items encoded afresh (b,) (at most
        ``fresh_items`` of the batch's positives and negatives) and their vectors (b, 384), with
        gradients into the adapter."""
        u = self.rec.num_users
        items = torch.unique(torch.cat([batch.seeds[batch.pos_pos], batch.seeds[batch.neg_pos].reshape(-1)])) - u
        if len(items) > self.fresh_items:
            items = items[torch.randperm(len(items), device=items.device)[:self.fresh_items]].sort().values
        table = self._cache().table(self.encoder, items)
        self.rec.text = table
        try:
            emb, ego = self.rec(batch)
        finally:
            self.rec.text = None  # the step's graph is not kept past the step
        return emb, ego, items, table[items]

    def step(self) -> None:
        """One optimiser step happened (the cache refreshes on its schedule)."""
        self._cache().step(self.encoder)

    @torch.no_grad()
    def item_text(self) -> torch.Tensor:
        """(I, 384) every item's text vector, encoded now (eval mode)."""
        cache = self._cache()
        cache.refresh(self.encoder)
        return cache.cache

    @torch.no_grad()
    def full_embeddings(self, adj: SparseAdj) -> tuple[torch.Tensor, torch.Tensor]:
        """((U, d) users, (I, d) items) with every item's text re-encoded."""
        self.rec.text = self.item_text()
        try:
            return self.rec.full_embeddings(adj)
        finally:
            self.rec.text = None

    @torch.no_grad()
    def new_item_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(n, d) final embeddings of items never seen in training, from their text alone (cold
        start): what :meth:`full_embeddings` gives an item with no interactions and a zero ID
        embedding, ``w S(enc(text)) / (L + 1)`` (its propagated layers are zero)."""
        self.encoder.eval()
        layer0 = self.rec.feature_weight * self.rec.extractors["text"](self.encoder(input_ids, attention_mask))
        return layer0 / (self.rec.num_layers + 1)

    def max_tokens(self) -> int:
        """Tokens per item text it was trained with."""
        return int(self.tokens["input_ids"].shape[1])
