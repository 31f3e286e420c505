"""Cold start: embed items that were never in training from their text alone, with a trained
PTMRec model (:meth:`raymm.methods.ptmrec.model.PTMRecModel.new_item_embeddings`)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import torch

from raymm.errors import InputError


def read_new_item_texts(path: str) -> list[str]:
    """The ``text`` column of a Parquet file of new items, checked (file, column and row named)."""
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as e:
        raise InputError(f"--new-items {path}: cannot read it as Parquet ({str(e).splitlines()[0][:200]})") from None
    if "text" not in table.column_names:
        raise InputError(f"--new-items {path}: no column 'text' (columns: {table.column_names})")
    texts = table.column("text").to_pylist()
    for row, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"--new-items {path}: column 'text', row {row}: expected a non-empty string, got {t!r}")
    if not texts:
        raise InputError(f"--new-items {path}: no rows")
    return texts


def embed_new_items(payload: dict, texts: list[str]) -> np.ndarray:
    """(n, d) final item embeddings of ``texts`` from a saved PTMRec payload (any other model kind
    cannot embed an item it never saw: an :class:`InputError`)."""
    from raymm.models.registry import from_payload
    from raymm.models.text_encoder import tokenize

    if payload.get("kind") != "ptmrec":
        raise InputError(f"--new-items: this model ({payload.get('kind')}) cannot embed new items from their text; "
                         "a PTMRec model (method.name: ptmrec) can")
    model = from_payload(payload)
    tokens = tokenize(texts, model.max_tokens())
    return model.new_item_embeddings(torch.as_tensor(tokens["input_ids"]),
                                     torch.as_tensor(tokens["attention_mask"])).numpy()
