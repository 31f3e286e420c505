import json

import numpy as np
import pandas as pd
import pytest

from raymm.data.importers import detect_layout, import_any, import_frame
from raymm.data.schema import DataValidationError
from raymm.data.store import load_dataset
from tests.conftest import SHARED_DATA


def _promptmm_dir(tmp_path, with_test=True):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.json").write_text(json.dumps({"0": [0, 1], "1": [1, 3], "2": [2], "3": []}))
    (src / "val.json").write_text(json.dumps({"0": [2], "2": [3], "3": [0]}))  # user 3 has no train
    if with_test:
        (src / "test.json").write_text(json.dumps({"1": [0]}))
    np.save(src / "image_feat.npy", np.arange(12, dtype=np.float16).reshape(4, 3))
    np.save(src / "audio_feat.npy", np.ones((4, 2)))
    return src


def test_promptmm_round_trip(tmp_path):
    src = _promptmm_dir(tmp_path)
    m = import_any(src, str(tmp_path / "ds"))
    assert (m.num_users, m.num_items) == (4, 4)  # user 3 is listed without items: still counted
    assert m.split_counts == {"train": 5, "val": 2, "test": 1}  # user 3's val row dropped (logged)
    ds = load_dataset(str(tmp_path / "ds"))
    splits = ds.read_interactions()
    assert sorted(zip(*splits["val"])) == [(0, 2), (2, 3)]
    img = ds.read_features("image")
    assert img.dtype == np.float32 and np.array_equal(img, np.arange(12, dtype=np.float32).reshape(4, 3))
    assert set(ds.manifest.modalities) == {"image", "audio"}


def test_promptmm_without_test_json(tmp_path):
    m = import_any(_promptmm_dir(tmp_path, with_test=False), str(tmp_path / "ds"))
    assert m.split_counts["test"] == 0


def test_unknown_eval_users_error_policy(tmp_path):
    with pytest.raises(DataValidationError, match="no training interaction"):
        import_any(_promptmm_dir(tmp_path), str(tmp_path / "ds"), unknown_eval_users="error")
    assert not (tmp_path / "ds").exists()


def test_pickled_npy_is_refused(tmp_path):
    src = _promptmm_dir(tmp_path)
    np.save(src / "text_feat.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    with pytest.raises(DataValidationError, match="without unpickling"):
        import_any(src, str(tmp_path / "ds"))
    assert not (tmp_path / "ds").exists()


def test_bad_json_names_file_and_row(tmp_path):
    src = _promptmm_dir(tmp_path)
    (src / "val.json").write_text(json.dumps({"0": [2], "x": [1]}))
    with pytest.raises(DataValidationError, match="val.json, column 'user_id', row 1"):
        import_any(src, str(tmp_path / "ds"))


def test_mmrec_round_trip(tmp_path):
    src = tmp_path / "mm"
    src.mkdir()
    pd.DataFrame({"userID": [0, 0, 1, 1, 2], "itemID": [0, 1, 1, 2, 0], "rating": 1.0, "timestamp": [5, 6, 7, 8, 9],
                  "x_label": [0, 1, 0, 2, 0]}).to_csv(src / "toy.inter", sep="\t", index=False)
    np.save(src / "image_feat.npy", np.random.default_rng(0).normal(size=(3, 4)))
    assert detect_layout(src) == "mmrec"
    m = import_any(src, str(tmp_path / "ds"))
    assert m.split_counts == {"train": 3, "val": 1, "test": 1} and m.has_timestamp


def test_mmrec_bad_label(tmp_path):
    src = tmp_path / "mm"
    src.mkdir()
    pd.DataFrame({"userID": [0, 1], "itemID": [0, 1], "x_label": [0, 5]}).to_csv(src / "a.inter", sep="\t", index=False)
    with pytest.raises(DataValidationError, match="a.inter, column 'x_label', row 1"):
        import_any(src, str(tmp_path / "ds"))


def test_parquet_table_import(tmp_path):
    frame = pd.DataFrame({"user_id": [0, 0, 1, 1], "item_id": [0, 1, 1, 0], "split": ["train", "val", "train", "val"],
                          "weight": np.float32([1, 1, 2, 1])})
    frame.to_parquet(tmp_path / "t.parquet")
    np.save(tmp_path / "f.npy", np.ones((2, 3)))
    m = import_any(tmp_path / "t.parquet", str(tmp_path / "ds"), feature_files={"vis": str(tmp_path / "f.npy")})
    assert m.has_weight and m.modalities["vis"].dim == 3


def test_frame_import_with_bad_ids(tmp_path):
    frame = pd.DataFrame({"user_id": [0, 1], "item_id": [0, -3], "split": ["train", "train"]})
    with pytest.raises(DataValidationError, match="item_id"):
        import_frame(frame, str(tmp_path / "ds"), num_items=4)


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "tiktok").exists(), reason="../shared/data/tiktok not present")
def test_import_real_tiktok(tmp_path):
    m = import_any(SHARED_DATA / "tiktok", str(tmp_path / "tiktok"))
    assert (m.num_users, m.num_items) == (9308, 6710)
    assert m.split_counts["train"] == 59541 and m.split_counts["val"] == 3051 - 5  # 5 val users have no train
    assert {k: v.dim for k, v in m.modalities.items()} == {"image": 128, "audio": 128}
    ds = load_dataset(str(tmp_path / "tiktok"))
    assert ds.read_features("image").dtype == np.float32
    # The MMRec file of the same data imports to the same interactions.
    m2 = import_any(SHARED_DATA / "tiktok", str(tmp_path / "tiktok2"), layout="mmrec")
    assert m2.split_counts == m.split_counts


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED_DATA / "amazon_baby").exists(), reason="../shared/data/amazon_baby not present")
def test_import_real_amazon_baby(tmp_path):
    m = import_any(SHARED_DATA / "amazon_baby", str(tmp_path / "baby"))
    assert (m.num_users, m.num_items) == (19445, 7050) and not m.modalities
    assert m.split_counts == {"train": 118551, "val": 21682, "test": 0}


@pytest.mark.parametrize("frame, column, problem", [
    ({"user_id": [0, 1, 2], "item_id": [0, 1, 5_000_000_000], "split": ["train"] * 3}, "item_id",
     "only 3 distinct ids appear"),
    ({"user_id": [0, 1, 2], "item_id": [0, 1, 2], "split": [0, 0, 0]}, "split", "integer codes"),
    ({"user_id": [0, None, 2], "item_id": [0, 1, 2], "split": ["train"] * 3}, "user_id", "null value"),
])
def test_import_frame_messages_name_the_real_problem(tmp_path, frame, column, problem):
    with pytest.raises(DataValidationError, match=problem) as err:
        import_frame(pd.DataFrame(frame), str(tmp_path / "ds"))
    assert err.value.column == column
    assert not (tmp_path / "ds").exists()


def test_remap_gives_dense_ids_keeps_the_originals_and_selects_feature_rows(tmp_path):
    frame = pd.DataFrame({"user_id": [10, 10, 3_000_000_000, 3_000_000_000], "item_id": [7, 2, 2, 5],
                          "split": ["train", "val", "train", "train"]})
    feats = {"image": np.arange(8 * 3, dtype=np.float32).reshape(8, 3)}  # row r = original item r
    m = import_frame(frame, str(tmp_path / "ds"), feats, remap=True)
    assert (m.num_users, m.num_items) == (2, 3)
    ds = load_dataset(str(tmp_path / "ds"))
    assert ds.original_ids("user").tolist() == [10, 3_000_000_000]
    assert ds.original_ids("item").tolist() == [2, 5, 7]
    assert np.array_equal(ds.read_features("image"), feats["image"][[2, 5, 7]])
    splits = ds.read_interactions()
    assert sorted(zip(*splits["train"])) == [(0, 2), (1, 0), (1, 1)]  # (10, 7), (3e9, 2), (3e9, 5)
    with pytest.raises(DataValidationError, match="item id 7 has no row"):
        import_frame(frame, str(tmp_path / "ds2"), {"image": feats["image"][:5]}, remap=True)


def test_truncated_npy_is_reported_as_truncated_not_as_a_pickle(tmp_path):
    from raymm.data.importers import load_npy_features

    path = tmp_path / "image.npy"
    np.save(path, np.ones((100, 8), dtype=np.float32))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataValidationError, match="truncated or corrupt") as err:
        load_npy_features(path)
    assert "unpickling" not in str(err.value)


def _recbole_dir(tmp_path, items=True):
    src = tmp_path / "ml"
    src.mkdir()
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u, n in ((7, 6), (9, 5), (11, 3)):  # user 11 has 3 interactions: dropped by min_len=5
        rows += [f"{u}\t{100 + (u + k) % 8}\t4\t{1000 + 10 * k}" for k in range(n)]
    (src / "ml.inter").write_text("\n".join(rows) + "\n")
    if items:
        lines = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
        lines += [f"{100 + i}\tFilm {i}\t199{i}\t{'Drama Comedy' if i % 2 else 'Action'}" for i in range(8)]
        (src / "ml.item").write_text("\n".join(lines) + "\n")
    return src


def test_recbole_import_splits_by_time_and_keeps_text_and_genres(tmp_path):
    src = _recbole_dir(tmp_path)
    assert detect_layout(src) == "recbole"
    m = import_any(src, str(tmp_path / "ds"), split="loo")
    assert m.split_protocol == "loo" and m.has_timestamp and m.num_users == 2
    assert m.split_counts == {"train": 7, "val": 2, "test": 2}
    ds = load_dataset(str(tmp_path / "ds"))
    items = ds.read_items()
    orig = ds.original_ids("item")
    k = int(np.flatnonzero(orig == 101)[0])
    assert items["text"][k] == "Film 1 (1991). Genres: Drama, Comedy"
    assert items["category"][k] != items["category"][int(np.flatnonzero(orig == 100)[0])]  # Drama vs Action
    frame = pd.concat([pd.read_parquet(p) for p in ds.interaction_paths()])
    last = frame.sort_values("timestamp").groupby("user_id").tail(1)
    assert set(last["split"]) == {"test"}


def test_recbole_item_missing_from_item_file_is_named(tmp_path):
    src = _recbole_dir(tmp_path)
    text = (src / "ml.item").read_text().splitlines()
    (src / "ml.item").write_text("\n".join(text[:-1]) + "\n")  # drop item 107
    with pytest.raises(DataValidationError, match="item id 107 has interactions but no row"):
        import_any(src, str(tmp_path / "ds"))
    assert not (tmp_path / "ds").exists()


def test_recbole_bad_timestamp_names_file_column_and_row(tmp_path):
    src = _recbole_dir(tmp_path, items=False)
    text = (src / "ml.inter").read_text().replace("\t1020\n", "\tsoon\n", 1)
    (src / "ml.inter").write_text(text)
    with pytest.raises(DataValidationError, match=r"ml.inter, column 'timestamp', row 2: must be an integer"):
        import_any(src, str(tmp_path / "ds"))
