"""Writing and loading canonical datasets (layout: :mod:`raymm.data.schema`) on any filesystem that
pyarrow or fsspec reaches (local paths, ``file://``, ``s3://``, ``gs://`` ...).

Writes are all-or-nothing: on a local filesystem everything goes to a temporary sibling directory
that is renamed into place at the end; on object stores the manifest is written last (a prefix
without a manifest is not a dataset) and the partial prefix is deleted on failure.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from raymm.data.schema import (FEATURES_DIR, ID_MAPS_DIR, INTERACTION_SCHEMA, INTERACTIONS_DIR, ITEM_COLUMNS, ITEMS_DIR,
                               MANIFEST,
                               OPTIONAL_COLUMNS,
                               SPLITS, DataValidationError, Manifest, ModalityInfo, feature_schema)
from raymm.data.validate import InteractionChecker, check_features, check_items

log = logging.getLogger(__name__)


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or URI. Relative local paths are made absolute."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except pa.ArrowInvalid:
        import fsspec
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fs, path = fsspec.core.url_to_fs(uri)
        return PyFileSystem(FSSpecHandler(fs)), path


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _sha256(fs: pafs.FileSystem, path: str) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def feature_table(matrix: np.ndarray) -> pa.Table:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    values = pa.array(matrix.reshape(-1))
    return pa.Table.from_arrays(
        [pa.array(np.arange(len(matrix), dtype=np.int64)), pa.FixedSizeListArray.from_arrays(values, matrix.shape[1])],
        schema=feature_schema(matrix.shape[1]))


def write_dataset(dest: str, shards: Iterable[pa.Table], features: dict[str, np.ndarray], num_users: int,
                  num_items: int, source: str = "", overwrite: bool = False, items: pa.Table | None = None,
                  id_maps: dict[str, np.ndarray] | None = None, split_protocol: str = "given") -> Manifest:
    """Validate and write a canonical dataset to ``dest``; return its manifest.

    Args:
        dest: local path or URI of the dataset directory (must not exist unless ``overwrite``).
        shards: interaction tables (``user_id``, ``item_id``, ``split`` [, ``timestamp``, ``weight``]),
            written one Parquet file each, so a generator never holds all of them in memory.
        features: modality name -> (num_items, dim) float array, row = item id.
        items: optional item table (``item_id`` and attributes such as ``category``), one row per item.
        id_maps: optional ``{"user"|"item": original ids}``, position = dense id (a remapped import).
        split_protocol: how the splits were made, recorded in the manifest (:mod:`raymm.data.splits`).
    """
    fs, final = resolve(dest)
    if _exists(fs, final) and not overwrite:
        raise FileExistsError(f"{dest} already exists (pass overwrite=True to replace it)")
    local = isinstance(fs, pafs.LocalFileSystem)
    work = (os.path.join(os.path.dirname(final), f".tmp-{os.path.basename(final)}-{uuid.uuid4().hex[:8]}")
            if local else final)
    fs.create_dir(work, recursive=True)
    try:
        manifest = _write_into(fs, work, shards, features, num_users, num_items, source, items, id_maps,
                               split_protocol)
        if local:
            if os.path.exists(final):
                trash = f"{work}.old"
                os.replace(final, trash)
                os.replace(work, final)
                shutil.rmtree(trash)
            else:
                os.replace(work, final)
        return manifest
    except BaseException:
        try:
            fs.delete_dir(work)
        except (OSError, FileNotFoundError):
            pass
        raise


def _write_into(fs, root, shards, features, num_users, num_items, source, items=None, id_maps=None,
                split_protocol="given") -> Manifest:
    checker = InteractionChecker(num_users, num_items)
    files: list[str] = []
    optional: set[str] = set()
    fs.create_dir(f"{root}/{INTERACTIONS_DIR}", recursive=True)
    for n, table in enumerate(shards):
        rel = f"{INTERACTIONS_DIR}/part-{n:05d}.parquet"
        checker.add(table, f"{source or 'interactions'} (shard {n})")
        cols = [c for c in OPTIONAL_COLUMNS if c in table.column_names]
        optional.update(cols)
        schema = pa.schema(list(INTERACTION_SCHEMA) + [(c, OPTIONAL_COLUMNS[c]) for c in cols])
        table = table.select(schema.names).cast(schema)
        with fs.open_output_stream(f"{root}/{rel}") as f:
            pq.write_table(table, f, row_group_size=256_000)
        files.append(rel)
    splits = checker.finish()
    modalities = {}
    fs.create_dir(f"{root}/{FEATURES_DIR}", recursive=True)
    for name, matrix in features.items():
        if not name.isidentifier():
            raise DataValidationError(name, "modality names must be identifiers (letters, digits, _)")
        matrix = check_features(np.arange(len(matrix)), np.asarray(matrix), f"modality '{name}'", num_items)
        rel = f"{FEATURES_DIR}/{name}.parquet"
        with fs.open_output_stream(f"{root}/{rel}") as f:
            pq.write_table(feature_table(matrix), f)
        modalities[name] = ModalityInfo(dim=int(matrix.shape[1]), file=rel)
    item_files, item_columns = [], []
    if items is not None:
        items = check_items(items, f"{source or 'items'} (item table)", num_items)
        item_columns = [c for c in ITEM_COLUMNS if c in items.column_names]
        schema = pa.schema([("item_id", pa.int64())] + [(c, ITEM_COLUMNS[c]) for c in item_columns])
        fs.create_dir(f"{root}/{ITEMS_DIR}", recursive=True)
        rel = f"{ITEMS_DIR}/part-00000.parquet"
        with fs.open_output_stream(f"{root}/{rel}") as f:
            pq.write_table(items.select(schema.names).cast(schema), f)
        item_files = [rel]
    map_files = {}
    for kind, original in (id_maps or {}).items():
        fs.create_dir(f"{root}/{ID_MAPS_DIR}", recursive=True)
        rel = f"{ID_MAPS_DIR}/{kind}.parquet"
        with fs.open_output_stream(f"{root}/{rel}") as f:
            pq.write_table(pa.table({"id": np.arange(len(original), dtype=np.int64),
                                     "original_id": np.asarray(original, dtype=np.int64)}), f)
        map_files[kind] = rel
    rels = files + [m.file for m in modalities.values()] + item_files + list(map_files.values())
    manifest = Manifest(
        num_users=num_users, num_items=num_items,
        split_counts={s: int(len(splits[s][0])) for s in SPLITS},
        modalities=modalities, interaction_files=files,
        checksums={rel: _sha256(fs, f"{root}/{rel}") for rel in rels},
        has_timestamp="timestamp" in optional, has_weight="weight" in optional, source=source,
        item_files=item_files, item_columns=item_columns, id_map_files=map_files, split_protocol=split_protocol)
    with fs.open_output_stream(f"{root}/{MANIFEST}") as f:
        f.write(manifest.to_json().encode())
    log.info("wrote dataset %s: %d users, %d items, splits %s, modalities %s", root, num_users, num_items,
             manifest.split_counts, {k: v.dim for k, v in modalities.items()})
    return manifest


def add_features(uri: str, name: str, matrix: np.ndarray, overwrite: bool = False) -> Manifest:
    """Add modality ``name`` ((num_items, dim) float) to the existing dataset at ``uri``.

    The feature file goes to a temporary name first; the manifest (rewritten last, then the file moved
    into place) never lists a file that is not complete. Refuses an existing modality unless ``overwrite``."""
    ds = load_dataset(uri, verify_checksums=False)
    if not name.isidentifier():
        raise DataValidationError(name, "modality names must be identifiers (letters, digits, _)")
    if name in ds.manifest.modalities and not overwrite:
        raise FileExistsError(f"{uri}: modality '{name}' exists (pass overwrite=True to replace it)")
    matrix = check_features(np.arange(len(matrix)), np.asarray(matrix), f"modality '{name}'", ds.num_items)
    rel = f"{FEATURES_DIR}/{name}.parquet"
    tmp = ds.path(f"{FEATURES_DIR}/.tmp-{name}-{uuid.uuid4().hex[:8]}.parquet")
    ds.fs.create_dir(ds.path(FEATURES_DIR), recursive=True)
    try:
        with ds.fs.open_output_stream(tmp) as f:
            pq.write_table(feature_table(matrix), f)
        digest = _sha256(ds.fs, tmp)
        ds.fs.move(tmp, ds.path(rel))
    except BaseException:
        if _exists(ds.fs, tmp):
            ds.fs.delete_file(tmp)
        raise
    manifest = ds.manifest
    manifest.modalities[name] = ModalityInfo(dim=int(matrix.shape[1]), file=rel)
    manifest.checksums[rel] = digest
    with ds.fs.open_output_stream(ds.path(MANIFEST)) as f:
        f.write(manifest.to_json().encode())
    return manifest


@dataclass
class Dataset:
    """A canonical dataset on some filesystem. :func:`load_dataset` makes one."""

    uri: str
    fs: pafs.FileSystem
    root: str
    manifest: Manifest

    @property
    def num_users(self) -> int:
        return self.manifest.num_users

    @property
    def num_items(self) -> int:
        return self.manifest.num_items

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def interaction_paths(self) -> list[str]:
        return [self.path(rel) for rel in self.manifest.interaction_files]

    def interaction_tables(self):
        """(path, table) of every interaction shard, read once each."""
        for path in self.interaction_paths():
            try:
                yield path, pq.read_table(path, filesystem=self.fs)
            except (pa.ArrowInvalid, OSError) as e:
                raise DataValidationError(path, f"cannot read Parquet file ({e})") from None

    def read_interactions(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Read and validate every shard; return {split: (user_ids, item_ids)} as int64 arrays."""
        checker = InteractionChecker(self.num_users, self.num_items)
        for path, table in self.interaction_tables():
            checker.add(table, path)
        splits = checker.finish()
        for s, (u, _) in splits.items():
            if len(u) != self.manifest.split_counts.get(s, 0):
                raise DataValidationError(self.path(MANIFEST), f"manifest says {self.manifest.split_counts.get(s)} "
                                          f"'{s}' interactions, files hold {len(u)}", column="split")
        return splits

    def read_features(self, name: str) -> np.ndarray:
        """(num_items, dim) float32 matrix of modality ``name``, row = item id, validated."""
        info = self.manifest.modalities[name]
        path = self.path(info.file)
        try:
            table = pq.read_table(path, filesystem=self.fs)
        except (pa.ArrowInvalid, OSError) as e:
            raise DataValidationError(path, f"cannot read Parquet file ({e})") from None
        for col in ("item_id", "feature"):
            if col not in table.column_names:
                raise DataValidationError(path, "missing required column", column=col)
        col = table.column("feature").combine_chunks()
        if not pa.types.is_fixed_size_list(col.type):
            raise DataValidationError(path, f"must be fixed_size_list<float32>[{info.dim}], got {col.type}", column="feature")
        if not pa.types.is_floating(col.type.value_type):
            raise DataValidationError(path, f"feature values must be float32, got {col.type.value_type}", column="feature")
        matrix = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
        return check_features(table.column("item_id").to_numpy(), matrix, path, self.num_items, info.dim)

    def read_all_features(self) -> dict[str, np.ndarray]:
        return {name: self.read_features(name) for name in self.manifest.modalities}

    def original_ids(self, kind: str) -> np.ndarray | None:
        """(n,) original ids of users or items (``kind``) of a remapped import, position = dense id; None
        when the ids were not remapped."""
        rel = self.manifest.id_map_files.get(kind)
        if rel is None:
            return None
        return pq.read_table(self.path(rel), filesystem=self.fs).column("original_id").to_numpy()

    def read_items(self) -> dict[str, np.ndarray]:
        """The item table's columns ordered by item id (``{}`` when the dataset has none), validated."""
        if not self.manifest.item_files:
            return {}
        tables = []
        for rel in self.manifest.item_files:
            try:
                tables.append(pq.read_table(self.path(rel), filesystem=self.fs))
            except (pa.ArrowInvalid, OSError) as e:
                raise DataValidationError(self.path(rel), f"cannot read Parquet file ({e})") from None
        table = check_items(pa.concat_tables(tables), self.path(self.manifest.item_files[0]), self.num_items)
        return {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}


def load_dataset(uri: str, verify_checksums: bool = True) -> Dataset:
    """Open the canonical dataset at ``uri``; check that every file exists (and its checksum)."""
    fs, root = resolve(uri)
    if "://" not in uri:
        uri = root  # absolute, so the dataset can be opened from other working directories
    mpath = f"{root}/{MANIFEST}"
    if not _exists(fs, root):
        raise FileNotFoundError(f"dataset path {uri} does not exist")
    if not _exists(fs, mpath):
        raise DataValidationError(mpath, "missing manifest: not a raymm dataset (import it first: "
                                  "python jobs/import_dataset.py --help)")
    with fs.open_input_stream(mpath) as f:
        manifest = Manifest.from_json(f.read().decode(), mpath)
    for rel in (manifest.interaction_files + [m.file for m in manifest.modalities.values()] + manifest.item_files
                + list(manifest.id_map_files.values())):
        path = f"{root}/{rel}"
        if not _exists(fs, path):
            raise DataValidationError(path, "file listed in the manifest is missing")
        if verify_checksums and rel in manifest.checksums and _sha256(fs, path) != manifest.checksums[rel]:
            raise DataValidationError(path, "checksum does not match the manifest (file changed or corrupt)")
    return Dataset(uri=uri, fs=fs, root=root, manifest=manifest)
