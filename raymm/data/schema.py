"""The canonical on-disk dataset layout and its manifest.

A raymm dataset is a directory (local path or any pyarrow/fsspec URI such as ``s3://bucket/ds``)::

    manifest.json                       counts, id ranges, modalities, file checksums
    interactions/part-00000.parquet     user_id int64, item_id int64, split string
    interactions/part-00001.parquet     (+ optional timestamp int64, weight float32)
    features/<modality>.parquet         item_id int64, feature fixed_size_list<float32>[dim]
    items/part-00000.parquet            optional: item_id int64 [, category int64 (semantic labels),
                                        text string (item content, e.g. "title (year). Genres: ...")]
    id_maps/{user,item}.parquet         optional (imports with --remap): id int64, original_id int64

Ids are dense and 0-based: users in ``[0, num_users)``, items in ``[0, num_items)``. ``split`` is one
of ``train``, ``val``, ``test``. Every modality table has exactly one row per item. The manifest is
written last, so a directory without one is never a dataset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from raymm.errors import InputError

FORMAT = "raymm-dataset"
VERSION = 1
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
INTERACTIONS_DIR = "interactions"
FEATURES_DIR = "features"
ITEMS_DIR = "items"
ID_MAPS_DIR = "id_maps"
ITEM_COLUMNS = {"category": pa.int64(), "text": pa.string()}  # optional item attributes beside item_id

INTERACTION_SCHEMA = pa.schema(
    [("user_id", pa.int64()), ("item_id", pa.int64()), ("split", pa.string())]
)
OPTIONAL_COLUMNS = {"timestamp": pa.int64(), "weight": pa.float32()}


def feature_schema(dim: int) -> pa.Schema:
    return pa.schema([("item_id", pa.int64()), ("feature", pa.list_(pa.float32(), dim))])


class DataValidationError(InputError):
    """Bad input data. The message names the file, the column and a sample row."""

    def __init__(self, file: str, problem: str, column: str | None = None, row: int | None = None,
                 sample: dict[str, Any] | None = None):
        parts = [str(file)]
        if column is not None:
            parts.append(f"column '{column}'")
        if row is not None:
            parts.append(f"row {row}")
        msg = ": ".join([", ".join(parts), problem])
        if sample is not None:
            msg += f" (sample row: {sample})"
        super().__init__(msg)
        self.file, self.column, self.row = str(file), column, row


@dataclass
class ModalityInfo:
    dim: int
    file: str


@dataclass
class Manifest:
    num_users: int
    num_items: int
    split_counts: dict[str, int]
    modalities: dict[str, ModalityInfo]
    interaction_files: list[str]
    checksums: dict[str, str] = field(default_factory=dict)
    has_timestamp: bool = False
    has_weight: bool = False
    item_files: list[str] = field(default_factory=list)  # the item table's shards (may be empty)
    item_columns: list[str] = field(default_factory=list)  # its attribute columns, e.g. ["category"]
    id_map_files: dict[str, str] = field(default_factory=dict)  # "user"/"item" -> original ids of a remapped import
    split_protocol: str = "given"  # how val/test were chosen: given (by the source) | loo | ratio:<r> (raymm.data.splits)
    source: str = ""
    format: str = FORMAT
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, file: str) -> "Manifest":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataValidationError(file, f"not valid JSON ({e})") from None
        if raw.get("format") != FORMAT or raw.get("version") != VERSION:
            raise DataValidationError(file, f"not a {FORMAT} v{VERSION} manifest")
        try:
            raw["modalities"] = {k: ModalityInfo(**v) for k, v in raw["modalities"].items()}
            return cls(**raw)
        except (TypeError, KeyError, AttributeError) as e:
            raise DataValidationError(file, f"malformed manifest ({e})") from None
