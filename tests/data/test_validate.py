"""Each bad input gives a DataValidationError naming the file, the column and a row, and nothing
half-written is left behind."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raymm.data.schema import DataValidationError
from raymm.data.store import feature_table, load_dataset, write_dataset
from tests.conftest import tiny_table


def _write(tmp_path, rows, features, num_users=3, num_items=4, name="ds"):
    return write_dataset(str(tmp_path / name), [tiny_table(rows)], features, num_users, num_items, source="tiny")


def _assert_nothing_written(tmp_path, name="ds"):
    assert not (tmp_path / name).exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_round_trip_through_an_fsspec_uri(tiny_rows, tiny_features):
    """Non-local URIs go through pyarrow/fsspec filesystems (here fsspec's in-memory one)."""
    uri = "memory://raymm-test/ds"
    write_dataset(uri, [tiny_table(tiny_rows)], tiny_features, 3, 4, source="tiny")
    ds = load_dataset(uri)
    assert ds.manifest.split_counts == {"train": 5, "val": 2, "test": 1}
    assert np.array_equal(ds.read_features("image"), tiny_features["image"])
    with pytest.raises(DataValidationError, match="duplicate"):
        write_dataset("memory://raymm-test/bad", [tiny_table(tiny_rows + [(0, 0, "train")])], tiny_features, 3, 4)
    import fsspec

    assert not fsspec.filesystem("memory").exists("/raymm-test/bad")  # nothing half-written


def test_round_trip(tmp_path, tiny_rows, tiny_features):
    m = _write(tmp_path, tiny_rows, tiny_features)
    assert m.split_counts == {"train": 5, "val": 2, "test": 1}
    ds = load_dataset(str(tmp_path / "ds"))
    splits = ds.read_interactions()
    assert sorted(zip(*splits["train"])) == [(0, 0), (0, 1), (1, 1), (1, 3), (2, 2)]
    for name, x in tiny_features.items():
        assert np.array_equal(ds.read_features(name), x)
    assert ds.manifest.modalities["text"].dim == 5


@pytest.mark.parametrize("bad_row, column, problem", [
    ((0, 9, "train"), "item_id", "out of range"),
    ((-1, 0, "train"), "user_id", "out of range"),
    ((7, 0, "train"), "user_id", "out of range"),
    ((0, 0, "train"), "user_id,item_id", "duplicate"),
    ((0, 3, "dev"), "split", "unknown split"),
])
def test_bad_interactions(tmp_path, tiny_rows, tiny_features, bad_row, column, problem):
    with pytest.raises(DataValidationError, match=problem) as err:
        _write(tmp_path, tiny_rows + [bad_row], tiny_features)
    assert err.value.column == column and err.value.row is not None
    assert "tiny" in str(err.value) and "sample row" in str(err.value)
    _assert_nothing_written(tmp_path)


def test_val_user_unknown_to_train(tmp_path, tiny_rows, tiny_features):
    rows = tiny_rows + [(2, 0, "test")]
    rows = [r for r in rows if r[0] != 2 or r[2] != "train"]
    with pytest.raises(DataValidationError, match="no training interaction") as err:
        _write(tmp_path, rows, tiny_features)
    assert err.value.column == "user_id"
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("split", ["train", "val"])
def test_empty_split(tmp_path, tiny_rows, tiny_features, split):
    rows = [r for r in tiny_rows if r[2] != split]
    with pytest.raises(DataValidationError, match=f"split '{split}' is empty"):
        _write(tmp_path, rows, tiny_features)
    _assert_nothing_written(tmp_path)


def test_missing_test_split_is_fine(tmp_path, tiny_rows, tiny_features):
    assert _write(tmp_path, [r for r in tiny_rows if r[2] != "test"], tiny_features).split_counts["test"] == 0


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_features(tmp_path, tiny_rows, tiny_features, value):
    tiny_features["image"][2, 1] = value
    with pytest.raises(DataValidationError, match="NaN or infinite") as err:
        _write(tmp_path, tiny_rows, tiny_features)
    assert err.value.row == 2 and "image" in str(err.value)
    _assert_nothing_written(tmp_path)


def test_features_not_covering_items(tmp_path, tiny_rows, tiny_features):
    tiny_features["text"] = tiny_features["text"][:3]
    with pytest.raises(DataValidationError, match="cover every item") as err:
        _write(tmp_path, tiny_rows, tiny_features)
    assert err.value.column == "item_id"
    _assert_nothing_written(tmp_path)


def test_wrong_feature_dtype(tmp_path, tiny_rows, tiny_features):
    tiny_features["text"] = np.array([["a"] * 5] * 4)
    with pytest.raises(DataValidationError, match="floating point|could not convert"):
        _write(tmp_path, tiny_rows, tiny_features)


def test_wrong_interaction_column_type(tmp_path, tiny_features):
    table = pa.table({"user_id": ["0"], "item_id": [0], "split": ["train"]})
    with pytest.raises(DataValidationError, match="integer id") as err:
        write_dataset(str(tmp_path / "ds"), [table], tiny_features, 3, 4)
    assert err.value.column == "user_id"


def test_missing_column(tmp_path, tiny_features):
    table = pa.table({"user": [0], "item_id": [0], "split": ["train"]})
    with pytest.raises(DataValidationError, match="missing required column") as err:
        write_dataset(str(tmp_path / "ds"), [table], tiny_features, 3, 4)
    assert err.value.column == "user_id"


def test_existing_destination_is_not_overwritten(tmp_path, tiny_rows, tiny_features):
    _write(tmp_path, tiny_rows, tiny_features)
    with pytest.raises(FileExistsError):
        _write(tmp_path, tiny_rows, tiny_features)


# --- errors on load ------------------------------------------------------------------------------

@pytest.fixture
def dataset_dir(tmp_path, tiny_rows, tiny_features):
    _write(tmp_path, tiny_rows, tiny_features)
    return tmp_path / "ds"


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(str(tmp_path / "nowhere"))


def test_missing_manifest(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DataValidationError, match="missing manifest"):
        load_dataset(str(tmp_path / "x"))


def test_missing_file(dataset_dir):
    os.remove(dataset_dir / "features" / "image.parquet")
    with pytest.raises(DataValidationError, match="image.parquet.*missing"):
        load_dataset(str(dataset_dir))


def test_corrupt_parquet(dataset_dir):
    path = dataset_dir / "interactions" / "part-00000.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataValidationError, match="checksum"):
        load_dataset(str(dataset_dir))
    ds = load_dataset(str(dataset_dir), verify_checksums=False)
    with pytest.raises(DataValidationError, match="part-00000.parquet.*cannot read Parquet"):
        ds.read_interactions()


def _replace_file(dataset_dir, rel, table):
    pq.write_table(table, dataset_dir / rel)
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    manifest["checksums"].pop(rel)
    (dataset_dir / "manifest.json").write_text(json.dumps(manifest))


def test_wrong_feature_dimension_on_load(dataset_dir):
    _replace_file(dataset_dir, "features/image.parquet", feature_table(np.zeros((4, 7), np.float32)))
    with pytest.raises(DataValidationError, match="dimension 7 != 3") as err:
        load_dataset(str(dataset_dir)).read_features("image")
    assert "image.parquet" in str(err.value)


def test_wrong_feature_value_type_on_load(dataset_dir):
    values = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(12), pa.int32()), 3)
    _replace_file(dataset_dir, "features/image.parquet",
                  pa.table({"item_id": pa.array(np.arange(4)), "feature": values}))
    with pytest.raises(DataValidationError, match="float32"):
        load_dataset(str(dataset_dir)).read_features("image")


def test_out_of_range_ids_on_load(dataset_dir, tiny_rows):
    _replace_file(dataset_dir, "interactions/part-00000.parquet", tiny_table(tiny_rows + [(1, 99, "train")]))
    with pytest.raises(DataValidationError, match="part-00000.parquet, column 'item_id', row 8"):
        load_dataset(str(dataset_dir)).read_interactions()


@pytest.mark.parametrize("items, column, problem", [
    ({"item_id": [0, 1, 2, 2], "category": [0, 1, 0, 1]}, "item_id", "once each"),
    ({"item_id": [0, 1, 2], "category": [0, 1, 0]}, "item_id", "3 rows for 4 items"),
    ({"item_id": [0, 1, 2, 3], "category": [0, -1, 0, 1]}, "category", ">= 0"),
    ({"item_id": [0, 1, 2, 3], "category": [0.5, 1.0, 0.0, 1.0]}, "category", "integer column"),
    ({"item_id": [0, 1, 2, 3], "category": [0, None, 0, 1]}, "category", "null value"),
])
def test_bad_item_table(tmp_path, tiny_rows, tiny_features, items, column, problem):
    with pytest.raises(DataValidationError, match=problem) as err:
        write_dataset(str(tmp_path / "ds"), [tiny_table(tiny_rows)], tiny_features, 3, 4, items=pa.table(items))
    assert err.value.column == column
    _assert_nothing_written(tmp_path)


def test_item_table_round_trip(tmp_path, tiny_rows, tiny_features):
    m = write_dataset(str(tmp_path / "ds"), [tiny_table(tiny_rows)], tiny_features, 3, 4,
                      items=pa.table({"item_id": [3, 1, 0, 2], "category": [5, 6, 7, 8]}))
    assert m.item_columns == ["category"] and m.item_files
    assert load_dataset(str(tmp_path / "ds")).read_items()["category"].tolist() == [7, 6, 8, 5]


def test_float64_too_large_for_float32_says_so(tmp_path, tiny_rows, tiny_features):
    feats = {"image": tiny_features["image"].astype(np.float64)}
    feats["image"][2, 1] = 1e300
    with pytest.raises(DataValidationError, match="1e\\+300 is too large for float32"):
        write_dataset(str(tmp_path / "ds"), [tiny_table(tiny_rows)], feats, 3, 4)
    _assert_nothing_written(tmp_path)
