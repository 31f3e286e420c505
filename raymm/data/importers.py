"""Importers from the layouts used by public multimodal recommendation code into the canonical
layout (:mod:`raymm.data.schema`).

- PromptMM / LATTICE / MMSSL: ``train.json``, ``val.json`` [, ``test.json``] mapping a user id
  (string) to a list of item ids, plus any number of ``<name>_feat.npy`` (row = item id).
- MMRec: ``<name>.inter`` (tab-separated, ``userID``, ``itemID``, ``x_label`` 0/1/2 = train/val/test)
  plus ``<name>_feat.npy``.
- A Parquet file or pandas DataFrame with ``user_id``, ``item_id``, ``split`` [, ``timestamp``,
  ``weight``], plus a dict of feature matrices.
- RecBole atomic files (MovieLens-100k and the other RecBole datasets): ``<name>.inter``
  (``user_id:token``, ``item_id:token``, ``timestamp:float`` ...) and optionally ``<name>.item``
  (title, year and genre fields become the item table's ``text`` and ``category``). These have no
  split: one is made by time (``split="loo"`` or ``"ratio:<r>"``, :mod:`raymm.data.splits`).

Policies (logged with counts, never silent):
- ``unknown_eval_users="drop"`` (default): validation/test rows of users with no training
  interaction are dropped (ID-only models cannot score them); ``"error"`` refuses them.
- float16 features are cast to float32 (sums overflow in float16).
- ``.npy`` files are loaded with ``allow_pickle=False``: object arrays are refused.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from raymm.data.schema import SPLITS, DataValidationError, Manifest
from raymm.data.splits import assign_splits
from raymm.data.store import write_dataset

log = logging.getLogger(__name__)

FEATURE_SUFFIX = "_feat.npy"


def load_npy_features(path: str | Path) -> np.ndarray:
    """A 2-d float feature matrix from ``.npy`` (no pickles), cast to float32."""
    path = str(path)
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" not in str(e):  # a truncated or corrupt file, not a pickle
            raise DataValidationError(path, f"not a readable .npy file, truncated or corrupt ({e})") from None
        raise DataValidationError(path, f"cannot load without unpickling ({e}); save the features as a plain "
                                  "numeric array: np.save(path, np.asarray(x, dtype=np.float32))") from None
    except (OSError, EOFError) as e:
        raise DataValidationError(path, f"not a readable .npy file ({type(e).__name__}: {e})") from None
    if x.ndim != 2:
        raise DataValidationError(path, f"features must be 2-d (items x dim), got shape {x.shape}", column="feature")
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise DataValidationError(path, f"features must be numeric, got dtype {x.dtype}", column="feature")
    return x.astype(np.float32)


def find_features(directory: str | Path) -> dict[str, Path]:
    """``<name>_feat.npy`` files in ``directory``, by modality name."""
    return {p.name[: -len(FEATURE_SUFFIX)]: p for p in sorted(Path(directory).glob(f"*{FEATURE_SUFFIX}"))}


def _read_user_item_json(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(user ids, item ids, largest user id listed) of a ``{"user": [items]}`` file."""
    def no_duplicate_keys(pairs):
        seen = {}
        for row, (key, value) in enumerate(pairs):
            if key in seen:
                raise DataValidationError(str(path), f"user {key!r} is listed twice (entries {seen[key]} and {row}); "
                                          "merge the lists", column="user_id", row=row)
            seen[key] = row
        return dict(pairs)

    try:
        raw = json.loads(path.read_text(), object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise DataValidationError(str(path), f"not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise DataValidationError(str(path), "top level must be an object mapping user id -> list of item ids")
    users, items, max_user = [], [], -1
    for row, (key, value) in enumerate(raw.items()):
        try:
            user = int(key)
        except ValueError:
            raise DataValidationError(str(path), f"user id {key!r} is not an integer", column="user_id", row=row,
                                      sample={key: value}) from None
        if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            raise DataValidationError(str(path), "item ids must be a list of integers", column="item_id", row=row,
                                      sample={key: value if not isinstance(value, list) else value[:5]})
        max_user = max(max_user, user)
        users.extend([user] * len(value))
        items.extend(value)
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), max_user


def _drop_unknown_eval_users(frame: pd.DataFrame, policy: str, source: str) -> pd.DataFrame:
    train_users = set(frame.loc[frame["split"] == "train", "user_id"].unique().tolist())
    unknown = (frame["split"] != "train") & ~frame["user_id"].isin(train_users)
    if unknown.any():
        if policy == "error":
            row = frame[unknown].iloc[0].to_dict()
            raise DataValidationError(source, f"{int(unknown.sum())} val/test interaction(s) of users with no "
                                      "training interaction", column="user_id", row=int(np.flatnonzero(unknown)[0]),
                                      sample=row)
        log.warning("%s: dropped %d val/test interaction(s) of %d user(s) with no training interaction "
                    "(policy unknown_eval_users=drop)", source, int(unknown.sum()),
                    frame.loc[unknown, "user_id"].nunique())
        print(f"[raymm] {source}: dropped {int(unknown.sum())} val/test interaction(s) of users with no training "
              "interaction (policy unknown_eval_users=drop)", flush=True)
        frame = frame[~unknown]
    return frame


def import_frame(frame: pd.DataFrame, dest: str, features: dict[str, np.ndarray] | None = None,
                 num_users: int | None = None, num_items: int | None = None, unknown_eval_users: str = "drop",
                 source: str = "<dataframe>", overwrite: bool = False, remap: bool = False,
                 items: pd.DataFrame | None = None, split_protocol: str = "given") -> Manifest:
    """Write an interaction DataFrame (``user_id``, ``item_id``, ``split`` [...]) plus features.

    ``remap``: user and item ids become dense ``0..n-1`` in the order of the original ids (items
    without any interaction are dropped, feature rows and ``items`` rows selected by original item
    id); the original ids are kept in the dataset (``id_maps/``, :meth:`Dataset.original_ids`).
    ``items``: optional item table (``item_id`` [, ``category``, ``text``]), one row per item."""
    if unknown_eval_users not in ("drop", "error"):
        raise ValueError(f"unknown_eval_users must be 'drop' or 'error', got {unknown_eval_users!r}")
    features = {k: np.asarray(v) for k, v in (features or {}).items()}
    for col in ("user_id", "item_id", "split"):
        if col not in frame.columns:
            raise DataValidationError(source, f"missing required column (columns are {list(frame.columns)})", column=col)
    for col in ("user_id", "item_id", "split"):
        nulls = np.flatnonzero(frame[col].isna().to_numpy())
        if nulls.size:
            raise DataValidationError(source, f"{nulls.size} null value(s)", column=col, row=int(nulls[0]),
                                      sample=frame.iloc[int(nulls[0])].to_dict())
    for col in ("user_id", "item_id"):
        if not pd.api.types.is_integer_dtype(frame[col]):
            bad = 0
            if pd.api.types.is_float_dtype(frame[col]):  # the first value that is not a whole number
                frac = np.flatnonzero(frame[col].to_numpy() % 1 != 0)
                bad = int(frac[0]) if frac.size else 0
            raise DataValidationError(source, f"must be an integer id, got dtype {frame[col].dtype}", column=col,
                                      row=bad, sample=frame.iloc[bad].to_dict() if len(frame) else None)
    if not (pd.api.types.is_string_dtype(frame["split"]) or pd.api.types.is_object_dtype(frame["split"])):
        raise DataValidationError(source, f"must hold the names train/val/test, got dtype {frame['split'].dtype} "
                                  "(integer codes? map them to names first)", column="split", row=0,
                                  sample=frame.iloc[0].to_dict() if len(frame) else None)
    if not (frame["split"] == "train").any():  # checked before eval rows of unknown users are dropped
        raise DataValidationError(source, "split 'train' is empty", column="split")
    frame = _drop_unknown_eval_users(frame, unknown_eval_users, source)
    id_maps = None
    if remap:
        frame, features, id_maps = _remap(frame, features, source)
        num_users, num_items = len(id_maps["user"]), len(id_maps["item"])
        if items is not None:
            items = _select_items(items, id_maps["item"], source)
    if num_users is None:
        num_users = int(frame["user_id"].max()) + 1 if len(frame) else 0
    if num_items is None:
        rows = {len(v) for v in features.values()}
        if len(rows) > 1:
            raise DataValidationError(source, f"feature files disagree on the number of items: "
                                      f"{ {k: len(v) for k, v in features.items()} }", column="item_id")
        num_items = rows.pop() if rows else (int(frame["item_id"].max()) + 1 if len(frame) else 0)
    for col, n in (("user_id", num_users), ("item_id", num_items)):
        distinct = int(frame[col].nunique())
        if n > 2 * distinct + 1_000_000:  # ids are embedding rows: a sparse range allocates what no row uses
            raise DataValidationError(source, f"ids reach {n - 1:,} but only {distinct:,} distinct ids appear: "
                                      f"training would allocate {n:,} embedding rows; re-map the ids to dense "
                                      f"0..{distinct - 1} first (jobs/import_dataset.py --remap)", column=col,
                                      row=int(np.argmax(frame[col].to_numpy())))
    cols = [c for c in ("user_id", "item_id", "split", "timestamp", "weight") if c in frame.columns]
    table = pa.Table.from_pandas(frame[cols], preserve_index=False)
    item_table = None if items is None else pa.Table.from_pandas(items, preserve_index=False)
    return write_dataset(dest, [table], features, num_users, num_items, source=source, overwrite=overwrite,
                         id_maps=id_maps, items=item_table, split_protocol=split_protocol)


def _select_items(items: pd.DataFrame, original: np.ndarray, source: str) -> pd.DataFrame:
    """The item table's rows for the remapped items, ``item_id`` set to the dense id."""
    by_id = items.set_index("item_id")
    missing = np.setdiff1d(original, by_id.index.to_numpy())
    if missing.size:
        raise DataValidationError(source, f"item id {int(missing[0])} has interactions but no row in the item table "
                                  f"({missing.size} such item(s))", column="item_id")
    out = by_id.loc[original].reset_index(drop=True)
    out.insert(0, "item_id", np.arange(len(original), dtype=np.int64))
    return out


def _remap(frame: pd.DataFrame, features: dict[str, np.ndarray], source: str):
    """Dense ids (see :func:`import_frame`); returns the new frame, features and id maps."""
    frame = frame.copy()
    maps = {}
    for col, kind in (("user_id", "user"), ("item_id", "item")):
        original, dense = np.unique(frame[col].to_numpy(), return_inverse=True)
        frame[col] = dense.astype(np.int64)
        maps[kind] = original
    for name, x in features.items():
        if len(maps["item"]) and maps["item"][-1] >= len(x):
            raise DataValidationError(source, f"item id {int(maps['item'][-1])} has no row in the '{name}' features "
                                      f"({len(x)} rows; with --remap, row r holds original item id r)", column="item_id")
    features = {name: x[maps["item"]] for name, x in features.items()}
    log.info("%s: remapped %d user and %d item ids to dense ids", source, len(maps["user"]), len(maps["item"]))
    return frame, features, maps


def import_promptmm(src: str | Path, dest: str, **kwargs) -> Manifest:
    """PromptMM / LATTICE / MMSSL layout (``test.json`` may be missing)."""
    src = Path(src)
    parts, max_user = [], -1
    for split in SPLITS:
        path = src / f"{split}.json"
        if not path.exists():
            if split == "test":
                continue
            raise DataValidationError(str(path), "missing file (the PromptMM layout needs train.json and val.json)")
        users, items, listed = _read_user_item_json(path)
        max_user = max(max_user, listed)
        parts.append(pd.DataFrame({"user_id": users, "item_id": items, "split": split}))
    frame = pd.concat(parts, ignore_index=True)
    features = {name: load_npy_features(p) for name, p in find_features(src).items()}
    if kwargs.get("num_users") is None:  # users listed without any item (tiktok has 10) still count
        kwargs["num_users"] = max_user + 1
    return import_frame(frame, dest, features, source=str(src), **kwargs)


def import_mmrec(src: str | Path, dest: str, inter_file: str | None = None, **kwargs) -> Manifest:
    """MMRec layout: one ``.inter`` TSV (``userID``, ``itemID``, ``x_label``) plus ``*_feat.npy``."""
    src = Path(src)
    if inter_file is None:
        found = sorted(src.glob("*.inter"))
        if len(found) != 1:
            raise DataValidationError(str(src), f"expected exactly one .inter file, found {[p.name for p in found]}")
        path = found[0]
    else:
        path = src / inter_file
    if not path.exists():
        raise DataValidationError(str(path), "missing file")
    raw = pd.read_csv(path, sep="\t")
    for col in ("userID", "itemID", "x_label"):
        if col not in raw.columns:
            raise DataValidationError(str(path), f"missing required column (columns are {list(raw.columns)})", column=col)
    labels = {0: "train", 1: "val", 2: "test"}
    bad = ~raw["x_label"].isin(list(labels))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataValidationError(str(path), "x_label must be 0 (train), 1 (val) or 2 (test)", column="x_label",
                                  row=row, sample=raw.iloc[row].to_dict())
    frame = pd.DataFrame({"user_id": raw["userID"], "item_id": raw["itemID"], "split": raw["x_label"].map(labels)})
    if "timestamp" in raw.columns and pd.api.types.is_integer_dtype(raw["timestamp"]):
        frame["timestamp"] = raw["timestamp"].astype(np.int64)
    features = {name: load_npy_features(p) for name, p in find_features(src).items()}
    return import_frame(frame, dest, features, source=str(path), **kwargs)


def import_parquet(path: str | Path, dest: str, feature_files: dict[str, str] | None = None, **kwargs) -> Manifest:
    """A Parquet interaction table plus ``{name: .npy path}`` features."""
    try:
        frame = pq.read_table(str(path)).to_pandas()
    except (pa.ArrowInvalid, OSError) as e:
        raise DataValidationError(str(path), f"cannot read Parquet file ({e})") from None
    features = {name: load_npy_features(p) for name, p in (feature_files or {}).items()}
    return import_frame(frame, dest, features, source=str(path), **kwargs)


def _read_atomic(path: Path) -> pd.DataFrame:
    """A RecBole atomic file (tab-separated, header ``name:type``) with the ``:type`` suffixes removed."""
    if not path.exists():
        raise DataValidationError(str(path), "missing file")
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataValidationError(str(path), f"not a readable tab-separated file ({e})") from None
    raw.columns = [c.split(":", 1)[0] for c in raw.columns]
    return raw


def _int_column(raw: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(raw[col], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy() | (values.to_numpy() % 1 != 0))
    if bad.size:
        raise DataValidationError(str(path), "must be an integer", column=col, row=int(bad[0]),
                                  sample=raw.iloc[int(bad[0])].to_dict())
    return values.to_numpy().astype(np.int64)


def recbole_items(path: Path) -> pd.DataFrame:
    """Item table (``item_id`` original, ``category``, ``text``) from a RecBole ``.item`` file.

    ``text`` is "title (year). Genres: g1, g2" (MovieLens fields ``movie_title``, ``release_year``,
    ``class``; missing parts are left out); ``category`` is the index of the item's first listed
    genre in the sorted genre vocabulary (one label per item, as SGFD's labels need)."""
    raw = _read_atomic(path)
    if "item_id" not in raw.columns:
        raise DataValidationError(str(path), f"missing required column (columns are {list(raw.columns)})",
                                  column="item_id")
    ids = _int_column(raw, "item_id", path)
    dup = np.flatnonzero(pd.Series(ids).duplicated().to_numpy())
    if dup.size:
        raise DataValidationError(str(path), f"item id {ids[dup[0]]} is listed twice", column="item_id",
                                  row=int(dup[0]))
    title = raw.get("movie_title", raw.get("title", pd.Series([""] * len(raw)))).str.strip()
    year = raw.get("release_year", raw.get("year", pd.Series([""] * len(raw)))).str.strip()
    genres = raw.get("class", raw.get("genre", pd.Series([""] * len(raw)))).str.split()
    text = [(f"{t} ({y})" if y else t) + (f". Genres: {', '.join(g)}" if g else "")
            for t, y, g in zip(title, year, genres)]
    vocab = sorted({g[0] for g in genres if g} | {"<none>"})
    category = [vocab.index(g[0] if g else "<none>") for g in genres]
    return pd.DataFrame({"item_id": ids, "category": np.asarray(category, np.int64), "text": text})


def import_recbole(src: str | Path, dest: str, split: str = "loo", min_len: int = 5, **kwargs) -> Manifest:
    """RecBole atomic files in ``src``: one ``<name>.inter`` (``user_id``, ``item_id``,
    ``timestamp``) and, when present, ``<name>.item``. Every interaction counts (ratings are not
    thresholded); splits are made by time with ``split`` (``loo`` | ``ratio:<r>``); users with fewer
    than ``min_len`` interactions are dropped; ids are remapped to dense ones (originals kept)."""
    src = Path(src)
    found = sorted(src.glob("*.inter"))
    if len(found) != 1:
        raise DataValidationError(str(src), f"expected exactly one .inter file, found {[p.name for p in found]}")
    path = found[0]
    raw = _read_atomic(path)
    for col in ("user_id", "item_id", "timestamp"):
        if col not in raw.columns:
            raise DataValidationError(str(path), f"missing required column (columns are {list(raw.columns)})",
                                      column=col)
    frame = pd.DataFrame({"user_id": _int_column(raw, "user_id", path), "item_id": _int_column(raw, "item_id", path),
                          "timestamp": _int_column(raw, "timestamp", path)})
    keep, splits = assign_splits(frame["user_id"].to_numpy(), frame["timestamp"].to_numpy(), split, min_len,
                                 str(path))
    frame["split"] = splits
    frame = frame[keep].reset_index(drop=True)
    print(f"[raymm] {path}: split {split!r} by time; kept {int(keep.sum())} of {len(keep)} interactions "
          f"(users with >= {min_len})", flush=True)
    item_path = path.with_suffix(".item")
    items = recbole_items(item_path) if item_path.exists() else None
    kwargs["remap"] = True
    return import_frame(frame, dest, {}, source=str(path), items=items, split_protocol=split, **kwargs)


def detect_layout(src: str | Path) -> str:
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist")
    if src.is_file() and src.suffix == ".parquet":
        return "parquet"
    if (src / "manifest.json").exists():
        return "canonical"
    if (src / "train.json").exists():
        return "promptmm"
    if any(src.glob("*.inter")):
        header = next(src.glob("*.inter")).open().readline()
        return "recbole" if ":token" in header else "mmrec"
    raise DataValidationError(str(src), "unrecognised layout: expected train.json (PromptMM), *.inter (MMRec), "
                              "a .parquet file, or a raymm manifest.json")


def import_any(src: str | Path, dest: str, layout: str = "auto", **kwargs) -> Manifest:
    layout = detect_layout(src) if layout == "auto" else layout
    if layout == "promptmm":
        return import_promptmm(src, dest, **kwargs)
    if layout == "mmrec":
        return import_mmrec(src, dest, **kwargs)
    if layout == "parquet":
        return import_parquet(src, dest, **kwargs)
    if layout == "recbole":
        return import_recbole(src, dest, **kwargs)
    raise ValueError(f"cannot import layout {layout!r} (src {src}); a canonical dataset needs no import")


def default_import_dest(src: str | Path) -> str:
    return os.path.join("datasets", Path(src).resolve().name)
