"""Checks run on import and on load. Each failure raises :class:`DataValidationError` naming the
file, the column and a sample row."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raymm.data.schema import SPLITS, DataValidationError

SPLIT_CODE = {name: code for code, name in enumerate(SPLITS)}


def _sample(table: pa.Table, row: int) -> dict:
    return {k: v[0] for k, v in table.slice(row, 1).to_pydict().items()}


def check_interaction_table(table: pa.Table, file: str, num_users: int, num_items: int
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate one interaction shard; return (user_id, item_id, split code) as numpy arrays."""
    for col in ("user_id", "item_id", "split"):
        if col not in table.column_names:
            raise DataValidationError(file, f"missing required column (columns are {table.column_names})", column=col)
    for col in ("user_id", "item_id"):
        typ = table.schema.field(col).type
        if not pa.types.is_integer(typ):
            raise DataValidationError(file, f"must be an integer id, got type {typ}", column=col,
                                      row=0 if len(table) else None, sample=_sample(table, 0) if len(table) else None)
    if not (pa.types.is_string(table.schema.field("split").type) or pa.types.is_large_string(table.schema.field("split").type)):
        raise DataValidationError(file, f"must be a string, got type {table.schema.field('split').type}", column="split")
    for col in ("user_id", "item_id", "split"):
        nulls = table.column(col).is_null()
        if pc.any(nulls).as_py():
            row = int(pc.index(nulls, True).as_py())
            raise DataValidationError(file, "null value", column=col, row=row, sample=_sample(table, row))
    users = table.column("user_id").to_numpy().astype(np.int64, copy=False)
    items = table.column("item_id").to_numpy().astype(np.int64, copy=False)
    for col, ids, n in (("user_id", users, num_users), ("item_id", items, num_items)):
        bad = np.flatnonzero((ids < 0) | (ids >= n))
        if bad.size:
            row = int(bad[0])
            raise DataValidationError(file, f"{bad.size} id(s) negative or out of range [0, {n})",
                                      column=col, row=row, sample=_sample(table, row))
    split_names = table.column("split").to_numpy(zero_copy_only=False)
    codes = np.full(len(split_names), -1, dtype=np.int8)
    for name, code in SPLIT_CODE.items():
        codes[split_names == name] = code
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        row = int(bad[0])
        raise DataValidationError(file, f"unknown split {split_names[row]!r} (allowed: {', '.join(SPLITS)})",
                                  column="split", row=row, sample=_sample(table, row))
    for col, typ in (("timestamp", pa.int64()), ("weight", pa.float32())):
        if col in table.column_names and not (pa.types.is_integer(table.schema.field(col).type) if col == "timestamp"
                                                else pa.types.is_floating(table.schema.field(col).type)):
            raise DataValidationError(file, f"must be {typ}, got {table.schema.field(col).type}", column=col)
    return users, items, codes


@dataclass
class InteractionChecker:
    """Accumulates shards and runs the checks that span all of them (duplicates, empty splits,
    evaluation users unknown to train). Rows are traced back to (file, row) for messages."""

    num_users: int
    num_items: int
    files: list[str] = field(default_factory=list)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, table: pa.Table, file: str) -> None:
        self.parts.append(check_interaction_table(table, file, self.num_users, self.num_items))
        self.files.append(file)

    def _where(self, global_row: int) -> tuple[str, int]:
        offset = 0
        for file, (u, _, _) in zip(self.files, self.parts):
            if global_row < offset + len(u):
                return file, global_row - offset
            offset += len(u)
        raise IndexError(global_row)

    def finish(self, require_test: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Run the global checks; return {split: (users, items)}."""
        first = self.files[0] if self.files else "<interactions>"
        if not self.parts:
            raise DataValidationError(first, "no interaction files")
        users = np.concatenate([p[0] for p in self.parts])
        items = np.concatenate([p[1] for p in self.parts])
        codes = np.concatenate([p[2] for p in self.parts])
        keys = users * self.num_items + items
        order = np.argsort(keys, kind="stable")
        dup = np.flatnonzero(keys[order][1:] == keys[order][:-1])
        if dup.size:
            row = int(order[dup[0] + 1])
            file, local = self._where(row)
            raise DataValidationError(
                file, f"{dup.size} duplicate (user_id, item_id) interaction(s)", column="user_id,item_id",
                row=local, sample={"user_id": int(users[row]), "item_id": int(items[row]), "split": SPLITS[codes[row]]})
        out = {}
        for name, code in SPLIT_CODE.items():
            mask = codes == code
            if not mask.any() and (name != "test" or require_test):
                raise DataValidationError(first, f"split '{name}' is empty", column="split")
            out[name] = (users[mask], items[mask])
        train_users = np.zeros(self.num_users, dtype=bool)
        train_users[out["train"][0]] = True
        for name in ("val", "test"):
            unknown = np.flatnonzero(~train_users[users] & (codes == SPLIT_CODE[name]))
            if unknown.size:
                row = int(unknown[0])
                file, local = self._where(row)
                raise DataValidationError(
                    file, f"{unknown.size} {name} interaction(s) of users with no training interaction",
                    column="user_id", row=local,
                    sample={"user_id": int(users[row]), "item_id": int(items[row]), "split": name})
        return out


def check_features(item_ids: np.ndarray, matrix: np.ndarray, file: str, num_items: int, dim: int | None = None
                   ) -> np.ndarray:
    """Validate one modality table; return the float32 matrix ordered by item id (num_items, dim)."""
    if matrix.ndim != 2:
        raise DataValidationError(file, f"features must be a 2-d (items x dim) array, got shape {matrix.shape}", column="feature")
    if not np.issubdtype(matrix.dtype, np.floating):
        raise DataValidationError(file, f"features must be floating point, got dtype {matrix.dtype}", column="feature")
    if dim is not None and matrix.shape[1] != dim:
        raise DataValidationError(file, f"feature dimension {matrix.shape[1]} != {dim} declared in the manifest", column="feature")
    if len(item_ids) != num_items or len(matrix) != num_items:
        ids = set(np.asarray(item_ids).tolist())
        missing = [i for i in range(num_items) if i not in ids][:5]
        raise DataValidationError(
            file, f"{len(matrix)} feature rows for {num_items} items; rows must cover every item exactly once"
            + (f" (missing item ids, first: {missing})" if missing else ""), column="item_id")
    order = np.argsort(item_ids, kind="stable")
    if not np.array_equal(np.asarray(item_ids)[order], np.arange(num_items)):
        sorted_ids = np.asarray(item_ids)[order]
        bad = int(np.flatnonzero(sorted_ids != np.arange(num_items))[0])
        raise DataValidationError(file, f"item ids must be exactly 0..{num_items - 1}, once each "
                                  f"(first mismatch: expected {bad}, found {int(sorted_ids[bad])})",
                                  column="item_id", row=int(order[bad]))
    original = matrix[order]
    with np.errstate(over="ignore"):  # a value too large for float32 is reported just below
        matrix = original.astype(np.float32, copy=False)
    finite = np.isfinite(matrix)
    if not finite.all():
        pos = int(np.flatnonzero(~finite.all(axis=1))[0])
        col = int(np.flatnonzero(~finite[pos])[0])
        if np.isfinite(original[pos, col]):
            raise DataValidationError(file, f"feature value {original[pos, col]!r} is too large for float32",
                                      column="feature", row=int(order[pos]), sample={"item_id": int(pos)})
        raise DataValidationError(file, "NaN or infinite feature value", column="feature", row=int(order[pos]),
                                  sample={"item_id": int(pos), "feature[:4]": matrix[pos, :4].tolist()})
    return matrix


def check_items(table: pa.Table, file: str, num_items: int) -> pa.Table:
    """Validate the item table (``item_id`` int64 once per item, optional ``category`` int64 >= 0,
    optional ``text`` string); return it ordered by item id."""
    if "item_id" not in table.column_names:
        raise DataValidationError(file, "missing required column", column="item_id")
    for name in table.column_names:
        if table.column(name).null_count:
            row = int(np.flatnonzero(table.column(name).is_null().to_numpy(zero_copy_only=False))[0])
            raise DataValidationError(file, "null value", column=name, row=row, sample=_sample(table, row))
    for name in ("item_id", "category"):
        if name in table.column_names and not pa.types.is_integer(table.schema.field(name).type):
            raise DataValidationError(file, f"must be an integer column, got {table.schema.field(name).type}",
                                      column=name)
    if "text" in table.column_names and not (pa.types.is_string(table.schema.field("text").type)
                                             or pa.types.is_large_string(table.schema.field("text").type)):
        raise DataValidationError(file, f"must be a string column, got {table.schema.field('text').type}",
                                  column="text")
    ids = table.column("item_id").to_numpy().astype(np.int64)
    order = np.argsort(ids, kind="stable")
    if len(ids) != num_items or not np.array_equal(ids[order], np.arange(num_items)):
        sorted_ids = ids[order]
        n = min(len(ids), num_items)
        wrong = np.flatnonzero(sorted_ids[:n] != np.arange(n))
        bad = int(wrong[0]) if wrong.size else n - 1 if len(ids) > num_items else None
        raise DataValidationError(file, f"{len(ids)} rows for {num_items} items; item ids must be exactly "
                                  f"0..{num_items - 1}, once each", column="item_id",
                                  row=None if bad is None or bad < 0 else int(order[bad]))
    if "category" in table.column_names:
        cat = table.column("category").to_numpy()
        if (cat < 0).any():
            row = int(np.flatnonzero(cat < 0)[0])
            raise DataValidationError(file, "categories must be >= 0", column="category", row=row,
                                      sample=_sample(table, row))
    return table.take(pa.array(order))
