"""Cold start: embed items that were never in training from their text alone, with a trained
PTMRec model (:meth:`raymm.methods.ptmrec.model.PTMRecModel.new_item_embeddings`), and measure how
well a model ranks such items (:func:`cold_item_metrics`, on a split of
:mod:`raymm.data.holdout`)."""

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


@torch.no_grad()
def text_only_item_embeddings(model, items: np.ndarray) -> torch.Tensor:
    """(n, d) final embeddings of ``items`` from their text alone, as for an item never seen in
    training (ID embedding zero, no edges: ``w S(x_i) / (L + 1)``).

    ``model``: a stage-2 :class:`~raymm.methods.ptmrec.model.PTMRecModel` (the tuned encoder
    re-encodes the items' stored tokens) or the stage-1 LightGCN-M (its frozen-encoder vectors)."""
    from raymm.methods.ptmrec.model import PTMRecModel

    idx = torch.as_tensor(items, dtype=torch.long)
    if isinstance(model, PTMRecModel):
        return model.new_item_embeddings(model.tokens["input_ids"][idx], model.tokens["attention_mask"][idx])
    return model.feature_weight * model.item_features(idx)["text"] / (model.num_layers + 1)


@torch.no_grad()
def cold_item_metrics(model, graph, users: np.ndarray, items: np.ndarray, cold: np.ndarray,
                      ks: list[int]) -> dict[str, float]:
    """Full-ranking metrics over the cold items only: each user with a cold pair ranks every item
    of ``cold`` (sorted ids), each embedded from its text alone (:func:`text_only_item_embeddings`);
    the relevant items are the user's pairs (``users``, ``items``). Nothing is masked: no cold item
    is in training. User embeddings: the model's full-graph ones on the training ``graph``."""
    from raymm.evaluation import finalize, metric_sums
    from raymm.graph import EvalSplit, TrainGraph

    if len(users) == 0:
        raise InputError("no cold-start pairs to evaluate")
    local = np.searchsorted(cold, items)
    if (local >= len(cold)).any() or (cold[np.minimum(local, len(cold) - 1)] != items).any():
        raise InputError("cold-start pairs name items that are not among the cold items")
    model.eval()
    user_emb, _ = model.full_embeddings(graph.normalized_adjacency(normalization=model.normalization))
    item_emb = text_only_item_embeddings(model, cold)
    nothing = TrainGraph.from_interactions(np.zeros(0, np.int64), np.zeros(0, np.int64), graph.num_users, len(cold))
    pairs = np.unique(np.asarray(users, np.int64) * len(cold) + local)  # a repeated interaction counts once
    split = EvalSplit.from_interactions(pairs // len(cold), pairs % len(cold))
    return finalize(metric_sums(user_emb, item_emb, split, nothing, ks), ks)
