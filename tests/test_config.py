import pytest

from raymm.config import ConfigError, build_config, load_config


def test_defaults_and_overrides():
    cfg = build_config({}, ["train.epochs=3", "train.fanouts=[5, 2]", "train.lr=1e-3", "data.synthetic.num_users=10"])
    assert cfg.train.epochs == 3 and cfg.train.fanouts == [5, 2] and cfg.train.lr == 1e-3
    assert cfg.data.synthetic.num_users == 10


def test_default_yaml_is_valid():
    cfg = load_config("conf/default.yaml")
    assert cfg.model.name == "lightgcn"


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
