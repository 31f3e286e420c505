"""Bad input, end to end: each case runs a real job in a fresh process and must end with a clear
one-line message naming the file/key (and row where there is one), a nonzero exit status, nothing
half-written, and nothing registered or marked best.

Raw data goes through ``jobs/import_dataset.py`` (the gate into the canonical layout); configs,
dataset paths, the tracking server and saved teachers go through ``jobs/train_promptmm.py``.
"""

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
USERS, ITEMS, DIM = 30, 20, 8

pytestmark = pytest.mark.integration


def _run(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _raw(tmp_path):
    """A valid raw Parquet layout: every user has 4 train, 1 val and 1 test interaction."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(USERS):
        items = rng.choice(ITEMS, size=6, replace=False)
        rows += [(u, int(i), s) for i, s in zip(items, ["train"] * 4 + ["val", "test"])]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "split"])
    features = rng.normal(size=(ITEMS, DIM)).astype(np.float32)
    return frame, features


def _import(tmp_path, frame, features, *extra, parquet_bytes=None):
    src = tmp_path / "interactions.parquet"
    if parquet_bytes is not None:
        src.write_bytes(parquet_bytes)
    else:
        frame.to_parquet(src, index=False)
    np.save(tmp_path / "image.npy", features)
    dest = tmp_path / "out" / "dataset"
    proc = _run("jobs/import_dataset.py", str(src), str(dest), "--feature", f"image={tmp_path / 'image.npy'}", *extra)
    return proc, dest


def _refused(proc, *needles):
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    message = proc.stderr[proc.stderr.find("raymm: error: "):]
    assert message.startswith("raymm: error: "), proc.stderr[-2000:]
    assert len(message.strip().splitlines()) == 1, message  # one line, the last
    for needle in needles:
        assert needle in message, (needle, message)


def _nothing_imported(dest):
    parent = dest.parent
    assert not dest.exists()
    assert not parent.exists() or not any(parent.iterdir()), list(parent.iterdir())  # no .tmp-* left behind


def test_valid_raw_data_imports(tmp_path):
    """The baseline the bad cases are cut from is itself accepted."""
    frame, features = _raw(tmp_path)
    proc, dest = _import(tmp_path, frame, features)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (dest / "manifest.json").exists()


def test_corrupt_parquet(tmp_path):
    frame, features = _raw(tmp_path)
    proc, dest = _import(tmp_path, frame, features, parquet_bytes=b"PAR1 this is not parquet")
    _refused(proc, "interactions.parquet", "cannot read Parquet file")
    _nothing_imported(dest)


def test_wrong_column_name(tmp_path):
    frame, features = _raw(tmp_path)
    proc, dest = _import(tmp_path, frame.rename(columns={"item_id": "item"}), features)
    _refused(proc, "interactions.parquet", "column 'item_id'", "missing required column")
    _nothing_imported(dest)


def test_wrong_column_type(tmp_path):
    frame, features = _raw(tmp_path)
    proc, dest = _import(tmp_path, frame.assign(item_id=frame["item_id"].map(lambda i: f"i{i}")), features)
    _refused(proc, "interactions.parquet", "column 'item_id'", "must be an integer id")
    _nothing_imported(dest)


def test_negative_id(tmp_path):
    frame, features = _raw(tmp_path)
    frame.loc[7, "user_id"] = -1
    proc, dest = _import(tmp_path, frame, features)
    _refused(proc, "column 'user_id'", "row 7", "negative or out of range")
    _nothing_imported(dest)


def test_out_of_range_item_id(tmp_path):
    frame, features = _raw(tmp_path)
    frame.loc[11, "item_id"] = ITEMS + 5  # the feature matrix has ITEMS rows
    proc, dest = _import(tmp_path, frame, features)
    _refused(proc, "column 'item_id'", "row 11", f"out of range [0, {ITEMS})")
    _nothing_imported(dest)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_feature(tmp_path, bad):
    frame, features = _raw(tmp_path)
    features[3, 2] = bad
    proc, dest = _import(tmp_path, frame, features)
    _refused(proc, "image", "column 'feature'", "row 3", "NaN or infinite")
    _nothing_imported(dest)


def test_features_not_covering_all_items(tmp_path):
    frame, features = _raw(tmp_path)
    proc, dest = _import(tmp_path, frame, features[:-1], "--num-items", str(ITEMS))
    _refused(proc, "image", f"{ITEMS - 1} feature rows for {ITEMS} items", f"missing item ids, first: [{ITEMS - 1}]")
    _nothing_imported(dest)


@pytest.mark.parametrize("split", ["train", "val"])
def test_empty_split(tmp_path, split):
    frame, features = _raw(tmp_path)
    frame = frame[frame["split"] != split]
    proc, dest = _import(tmp_path, frame, features, "--num-items", str(ITEMS))
    _refused(proc, f"split '{split}' is empty")
    _nothing_imported(dest)


# ---------------------------------------------------------------- train job


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A valid canonical dataset (imported once) for the train-job cases."""
    tmp = tmp_path_factory.mktemp("raw")
    frame, features = _raw(tmp)
    proc, dest = _import(tmp, frame, features)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return dest


def _train(out, *overrides, data=None, timeout=300):
    args = ["jobs/train.py", "--config", "conf/lightgcn.yaml", f"output.dir={out}", "train.epochs=1"]
    if data is not None:
        args += ["data.source=path", f"data.path={data}"]
    return _run(*args, *overrides, timeout=timeout)


def _nothing_trained(out):
    """No run records, checkpoints, best models, MLflow runs or registered models."""
    if not out.exists():
        return
    names = [p.name for p in out.rglob("*")]
    assert not [n for n in names if n.endswith(("best_model.pt", ".done.json")) or n in ("metrics.json", "ray_results")], names
    db = out / "mlflow.db"
    if db.exists():
        with sqlite3.connect(db) as con:
            assert con.execute("select count(*) from runs").fetchone()[0] == 0
            assert con.execute("select count(*) from registered_models").fetchone()[0] == 0


def test_corrupt_file_in_canonical_dataset(dataset, tmp_path):
    data = tmp_path / "dataset"
    shutil.copytree(dataset, data)
    shard = next((data / "interactions").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:100])  # truncated
    proc = _train(tmp_path / "out", data=data)
    _refused(proc, shard.name, "checksum does not match")
    _nothing_trained(tmp_path / "out")


@pytest.mark.parametrize("override, needles", [
    ("train.epoch=3", ["train.epoch", "unknown key"]),
    ("train.lr=fast", ["train.lr"]),
    ("method.name=promptmm method.promptmm.distill.tau_pair=-1", ["method.promptmm.distill.tau_pair", "greater than 0"]),
    ("method.sgfd.w_ce=1", ["method.sgfd", "unknown key", "method.name is 'lightgcn'"]),
    ("train.num_workers=0", ["train.num_workers", "greater than 0"]),
])
def test_bad_config(tmp_path, override, needles):
    proc = _train(tmp_path / "out", *override.split())
    _refused(proc, *needles)
    assert not (tmp_path / "out").exists()  # rejected before anything was written


def test_dataset_path_does_not_exist(tmp_path):
    proc = _train(tmp_path / "out", data=tmp_path / "no-such-dataset")
    _refused(proc, "no-such-dataset", "does not exist")
    _nothing_trained(tmp_path / "out")


def test_unreachable_tracking_server(dataset, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    proc = _train(tmp_path / "out", f"mlflow.tracking_uri=http://127.0.0.1:{port}", data=dataset)
    _refused(proc, f"http://127.0.0.1:{port}", "unreachable")
    assert not (tmp_path / "out").exists()  # failed before data, Ray or training


def test_teacher_checkpoint_not_matching_dataset(dataset, tmp_path):
    teacher = tmp_path / "teacher_best_model.pt"
    torch.save({"kind": "promptmm_teacher", "version": 1, "state_dict": {},
                "hparams": {"num_users": USERS, "num_items": ITEMS + 7, "feature_dims": {"image": DIM}}}, teacher)
    proc = _train(tmp_path / "out", "method.name=promptmm", "method.promptmm.prompt.size=4",
                  f"method.promptmm.teacher.checkpoint={teacher}", data=dataset)
    _refused(proc, str(teacher), "does not match the dataset", f"{ITEMS + 7} items")
    _nothing_trained(tmp_path / "out")


def test_pickled_features_are_refused(tmp_path):
    frame, _ = _raw(tmp_path)
    frame.to_parquet(tmp_path / "interactions.parquet", index=False)
    np.save(tmp_path / "image.npy", np.array([{"not": "numbers"}] * ITEMS, dtype=object), allow_pickle=True)
    dest = tmp_path / "out" / "dataset"
    proc = _run("jobs/import_dataset.py", str(tmp_path / "interactions.parquet"), str(dest),
                "--feature", f"image={tmp_path / 'image.npy'}")
    _refused(proc, "image.npy", "without unpickling", "np.save")
    _nothing_imported(dest)


def test_diverged_training_stops_with_the_epoch_and_step_and_saves_nothing(dataset, tmp_path):
    """train.lr=inf: the first step's update makes every weight non-finite; the stage stops there with
    one error line naming the stage, epoch and step; nothing is saved as best, nothing registered,
    and the job's MLflow run is marked FAILED (not left RUNNING)."""
    out = tmp_path / "out"
    proc = _train(out, "train.lr=.inf", "train.num_workers=1", data=dataset, timeout=600)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    # Ray may still stream a worker's log lines after it; the job's own line is the one error line
    errors = [line for line in proc.stderr.splitlines() if line.startswith("raymm: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    last = errors[0]
    assert last.startswith("raymm: error: lightgcn diverged at epoch 1, step "), last
    assert "lower the learning rate" in last
    assert not list(out.rglob("*best_model.pt")) and not list(out.rglob("metrics.json"))
    with sqlite3.connect(out / "mlflow.db") as con:
        assert {s for (s,) in con.execute("select status from runs")} == {"FAILED"}
        assert con.execute("select count(*) from registered_models").fetchone()[0] == 0


@pytest.mark.parametrize("override, needle", [("train.num_workers=64", "32 CPU asked (train.num_workers=64"),
                                              ("train.use_gpu=true", "GPU asked")])
def test_workers_that_can_never_fit_the_cluster_are_refused_at_once(dataset, tmp_path, override, needle):
    out = tmp_path / "out"
    proc = _train(out, override, data=dataset)
    _refused(proc, "can never fit this cluster", needle, "the cluster has")
    _nothing_trained(out)


@pytest.mark.parametrize("override, needles", [
    ("data.path=/somewhere", ["data.path is '/somewhere' but data.source is 'synthetic'"]),
    ("mlflow.tracking_uri=ftp://host/x", ["unknown scheme 'ftp'"]),
    ("output.dir={tmp}/a-file/out", ["output.dir", "a-file is not a directory"]),
    ("mlflow.tracking_uri=sqlite:///{tmp}/a-file/mlflow.db", ["mlflow.tracking_uri", "a-file is not writable"]),
    ("train.fanouts=[10,", ["override train.fanouts", "malformed YAML"]),
])
def test_ignored_or_unusable_settings_are_refused(tmp_path, override, needles):
    (tmp_path / "a-file").write_text("not a directory")
    proc = _run("jobs/train.py", "--config", "conf/lightgcn.yaml", f"output.dir={tmp_path / 'out'}",
                override.format(tmp=tmp_path))
    _refused(proc, *needles)
    assert not (tmp_path / "out").exists()


def test_json_layout_listing_a_user_twice_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.json").write_text('{"0": [0, 1], "1": [1], "0": [2]}')
    (src / "val.json").write_text('{"0": [3]}')
    proc = _run("jobs/import_dataset.py", str(src), str(tmp_path / "out" / "ds"), "--num-items", "4")
    _refused(proc, "train.json", "user '0' is listed twice")
    _nothing_imported(tmp_path / "out" / "ds")


def test_import_feature_flag_without_a_name(tmp_path):
    proc = _run("jobs/import_dataset.py", "x.parquet", str(tmp_path / "out" / "ds"), "--feature", "img.npy")
    _refused(proc, "--feature 'img.npy'", "NAME=PATH.npy")


def test_ids_in_the_billions_are_refused_unless_remapped(tmp_path):
    pd.DataFrame({"user_id": [0, 1, 1], "item_id": [0, 4_000_000_000, 0],
                  "split": ["train", "train", "val"]}).to_parquet(tmp_path / "inter.parquet", index=False)
    dest = tmp_path / "out" / "ds"
    proc = _run("jobs/import_dataset.py", str(tmp_path / "inter.parquet"), str(dest))
    _refused(proc, "item_id", "ids reach 4,000,000,000 but only 2 distinct ids appear", "--remap")
    _nothing_imported(dest)
    proc = _run("jobs/import_dataset.py", str(tmp_path / "inter.parquet"), str(dest), "--remap")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 users, 2 items" in proc.stdout


def _mutations(rng, frame):
    """One random malformation of a valid interaction frame (name, frame)."""
    f = frame.copy()
    row = int(rng.integers(len(f)))
    kind = rng.choice(["negative_id", "huge_id", "null_id", "float_id", "string_id", "unknown_split",
                       "int_split", "drop_column", "duplicate_pair", "no_train"])
    col = rng.choice(["user_id", "item_id"])
    if kind == "negative_id":
        f.loc[row, col] = -int(rng.integers(1, 10))
    elif kind == "huge_id":
        f.loc[row, col] = int(rng.integers(10**10, 10**12))
    elif kind == "null_id":
        f[col] = f[col].astype("float64")
        f.loc[row, col] = np.nan
    elif kind == "float_id":
        f[col] = f[col].astype("float64") + 0.5
    elif kind == "string_id":
        f[col] = f[col].astype(str)
    elif kind == "unknown_split":
        f.loc[row, "split"] = rng.choice(["Train", "valid", "", "tst"])
    elif kind == "int_split":
        f["split"] = rng.integers(0, 3, len(f))
    elif kind == "drop_column":
        f = f.drop(columns=[rng.choice(["user_id", "item_id", "split"])])
    elif kind == "duplicate_pair":
        f = pd.concat([f, f.iloc[[row]]], ignore_index=True)
    else:
        f["split"] = "val"
    return kind, f


def test_random_malformed_rows_are_refused_cleanly(tmp_path):
    """Property-style: 80 random malformations of a valid table; each is refused with one
    DataValidationError line naming the column, and nothing is written (eval rows of unknown users
    are refused too here, not dropped, so that every malformation is an error)."""
    from raymm.data.importers import import_frame
    from raymm.errors import InputError

    rng = np.random.default_rng(0)
    frame, features = _raw(tmp_path)
    seen = set()
    for trial in range(80):
        kind, bad = _mutations(rng, frame)
        dest = tmp_path / "out" / f"ds{trial}"
        with pytest.raises(InputError) as err:
            import_frame(bad, str(dest), {"image": features}, unknown_eval_users="error")
        message = str(err.value)
        assert "\n" not in message and ("column '" in message or "missing required column" in message), (kind, message)
        assert not dest.exists() and not list((tmp_path / "out").glob(".tmp-*"))
        seen.add(kind)
    assert len(seen) >= 8  # the random draw covered most kinds


def test_random_malformed_config_values_are_refused_naming_the_key():
    """Property-style: random wrong types, out-of-range values and unknown keys at random config
    keys; each is a ConfigError naming that key."""
    from raymm.config import ConfigError, build_config, flatten

    rng = np.random.default_rng(1)
    keys = [k for k, v in flatten(build_config({})).items() if isinstance(v, (int, float, bool)) and
            not k.startswith("data.synthetic.modalities")]
    for _ in range(60):
        key = str(rng.choice(keys))
        value = rng.choice(["'text'", "[1, 2]", "{a: 1}", "-1e9", "null"])
        if key.endswith("seed") and value == "-1e9":
            value = "'text'"
        try:
            build_config({}, [f"{key}={value}"])
        except ConfigError as e:
            assert key.split(".")[-1] in str(e), (key, value, str(e))
        else:  # a few keys accept any number or null (e.g. a seed); only those may pass
            assert value in ("-1e9", "null") or key.endswith(".seed"), (key, value)
    with pytest.raises(ConfigError, match="train.no_such_key: unknown key"):
        build_config({}, ["train.no_such_key=1"])


@pytest.mark.parametrize("args, needles", [
    (["jobs/evaluate.py", "--model", "m.pt", "--data", "d", "--ks", "10,x"], ["--ks '10,x'", "positive integers"]),
    (["jobs/evaluate.py", "--model", "m.pt", "--data", "d", "--ks", "0"], ["--ks '0'"]),
    (["jobs/recommend.py", "--model", "models:/m@a", "--out", "OUT", "--k", "0"], ["--k 0", "positive integer"]),
    (["jobs/recommend.py", "--model", "models:/no-such-model@champion", "--tracking-uri", "TRACK", "--out", "OUT"],
     ["models:/no-such-model@champion", "cannot load it from MLflow"]),
])
def test_evaluate_and_recommend_flags(tmp_path, args, needles):
    args = [a.replace("OUT", str(tmp_path / "recs")).replace("TRACK", f"sqlite:///{tmp_path}/mlflow.db") for a in args]
    proc = _run(*args)
    _refused(proc, *needles)
    assert not (tmp_path / "recs").exists()


def test_method_needing_features_on_a_dataset_without_them(tmp_path):
    frame, _ = _raw(tmp_path)
    frame.to_parquet(tmp_path / "inter.parquet", index=False)
    dest = tmp_path / "data" / "ds"
    assert _run("jobs/import_dataset.py", str(tmp_path / "inter.parquet"), str(dest)).returncode == 0
    for method in ("sgfd", "promptmm"):
        proc = _train(tmp_path / "out", f"method.name={method}", data=dest)
        _refused(proc, f"method {method} needs modality features", str(dest))
    _nothing_trained(tmp_path / "out")


def test_prompt_larger_than_a_feature_dimension(dataset, tmp_path):
    proc = _train(tmp_path / "out", "method.name=promptmm", f"method.promptmm.prompt.size={DIM + 1}", data=dataset)
    _refused(proc, f"method.promptmm.prompt.size={DIM + 1} is larger than the smallest feature dimension")
    _nothing_trained(tmp_path / "out")


def test_time_split_flags_are_checked(tmp_path):
    src = tmp_path / "ml"
    src.mkdir()
    rows = ["user_id:token\titem_id:token\ttimestamp:float"] + [f"0\t{i}\t{i}" for i in range(6)]
    (src / "ml.inter").write_text("\n".join(rows) + "\n")
    proc = _run("jobs/import_dataset.py", "--split", "ratio:0.7", str(src), str(tmp_path / "out" / "ds"))
    _refused(proc, "split protocol 'ratio:0.7'", "loo", "ratio:<r>")
    _nothing_imported(tmp_path / "out" / "ds")
    proc = _run("jobs/import_dataset.py", "--split", "loo", "x.parquet", str(tmp_path / "out" / "ds2"),
                "--feature", "a=b.npy")
    assert proc.returncode != 0 and "x.parquet" in proc.stderr
