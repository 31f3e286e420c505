from pathlib import Path

import pytest

from raymm.config import ConfigError, build_config, load_config


def test_defaults_and_overrides():
    cfg = build_config({}, ["train.epochs=3", "train.fanouts=[5, 2]", "train.lr=1e-3", "data.synthetic.num_users=10"])
    assert cfg.train.epochs == 3 and cfg.train.fanouts == [5, 2] and cfg.train.lr == 1e-3
    assert cfg.data.synthetic.num_users == 10


@pytest.mark.parametrize("path", sorted(str(p) for p in Path("conf").glob("*.yaml")))
def test_every_shipped_config_is_valid(path):
    assert load_config(path).model.name in ("lightgcn", "promptmm")


def test_promptmm_needs_two_sampled_layers():
    with pytest.raises(ConfigError, match="fanouts"):
        build_config({}, ["model.name=promptmm", "train.fanouts=[5]", "model.num_layers=1", "teacher.num_layers=1"])


@pytest.mark.parametrize("tree, key", [
    ({"train": {"epochz": 3}}, "train.epochz: unknown key"),
    ({"trian": {}}, "trian: unknown key"),
    ({"train": {"epochs": "three"}}, "train.epochs"),
    ({"train": {"epochs": 1.5}}, "train.epochs"),
    ({"train": {"use_gpu": "false"}}, "train.use_gpu"),
    ({"train": {"num_workers": 0}}, "train.num_workers"),
    ({"train": {"lr": -1.0}}, "train.lr"),
    ({"train": {"fanouts": [0]}}, "fanouts"),
    ({"eval": {"select_metric": "recall@7"}}, "select_metric"),
    ({"data": {"source": "path"}}, "data.path is required"),
])
def test_invalid_configs_name_the_key(tree, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
        build_config(tree)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="dotted.key=value"):
        build_config({}, ["train.epochs"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
