from pathlib import Path

import pytest

from raymm.config import ConfigError, build_config, load_config
from raymm.methods.registry import METHODS


def test_defaults_and_overrides():
    cfg = build_config({}, ["train.epochs=3", "train.fanouts=[5, 2]", "train.lr=1e-3", "data.synthetic.num_users=10"])
    assert cfg.train.epochs == 3 and cfg.train.fanouts == [5, 2] and cfg.train.lr == 1e-3
    assert cfg.data.synthetic.num_users == 10


@pytest.mark.parametrize("path", sorted(str(p) for p in Path("conf").glob("**/*.yaml") if p.parent.name != "tune"))
def test_every_shipped_config_is_valid(path):
    assert load_config(path).method.name in METHODS


def test_ready_configs_compose_base_dataset_and_method():
    cfg = load_config("conf/sgfd_tiktok.yaml")
    assert cfg.method.name == "sgfd" and cfg.method.sgfd.labels == "kmeans:32"  # the ready file's own value
    assert cfg.data.source == "path" and cfg.model.embedding_dim == 64  # from conf/dataset/tiktok.yaml
    assert cfg.eval.select_metric == "recall@20"  # from conf/base.yaml


def test_layered_files_later_wins_and_a_new_method_replaces_the_old(tmp_path):
    over = tmp_path / "over.yaml"
    over.write_text("train:\n  epochs: 7\n")
    cfg = load_config(["conf/promptmm.yaml", str(over)], ["train.lr=0.5"])
    assert cfg.train.epochs == 7 and cfg.train.lr == 0.5 and cfg.method.promptmm.distill.pair_weight == 9.0
    cfg = load_config(["conf/promptmm.yaml", "conf/method/sgfd.yaml"])
    assert cfg.method.name == "sgfd"
    assert load_config("conf/promptmm.yaml", ["method.name=lightgcn"]).method.name == "lightgcn"


def test_include_cycle_and_bad_include(tmp_path):
    (tmp_path / "a.yaml").write_text("include: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("include: [a.yaml]\n")
    with pytest.raises(ConfigError, match="include cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("include: 3\n")
    with pytest.raises(ConfigError, match="include must be a list"):
        load_config(tmp_path / "c.yaml")


def test_options_of_another_method_are_an_error_naming_key_and_method():
    with pytest.raises(ConfigError, match=r"method.sgfd: unknown key \(method.name is 'promptmm'"):
        build_config({}, ["method.sgfd.w_ce=1"])
    with pytest.raises(ConfigError, match=r"method.promptmm.distill.tau_pair: Input should be greater than 0"):
        build_config({}, ["method.promptmm.distill.tau_pair=-1"])
    with pytest.raises(ConfigError, match=r"method.name: unknown method 'nope'"):
        build_config({}, ["method.name=nope"])
    with pytest.raises(ConfigError, match=r"teacher: unknown key \(moved to method.promptmm.teacher\)"):
        build_config({"teacher": {"epochs": 1}})


def test_promptmm_needs_two_sampled_layers():
    with pytest.raises(ConfigError, match="fanouts"):
        build_config({}, ["method.name=promptmm", "train.fanouts=[5]", "model.num_layers=1",
                          "method.promptmm.teacher.num_layers=1"])


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+"):
        load_config(bad)
    with pytest.raises(ConfigError, match="override train.fanouts"):
        build_config({}, ["train.fanouts=[1,"])


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


def test_an_override_can_set_one_key_of_a_mapping_left_null():
    tree = {"method": {"name": "freedom", "freedom": {"modality_weights": None}}}
    cfg = build_config(tree, ["method.freedom.modality_weights.acoustic=1.0",
                              "method.freedom.modality_weights.visual=3"])
    assert cfg.method.freedom.modality_weights == {"acoustic": 1.0, "visual": 3.0}
    with pytest.raises(ConfigError, match="'lr' is not a section"):
        build_config({"train": {"lr": 0.01}}, ["train.lr.x=1"])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="dotted.key=value"):
        build_config({}, ["train.epochs"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted(str(p) for p in Path("conf/tune").glob("*.yaml")))
def test_every_shipped_sweep_is_valid(path):
    from raymm.tuning import load_sweep

    sweep, base = load_sweep(path, ["teacher_checkpoint=null"])  # (a saved teacher is checked when the sweep runs)
    assert sweep.space and base.method.name


def test_a_relaunch_under_the_same_run_name_must_train_the_same_config(tmp_path):
    """Same name + changed config would resume the old checkpoints and ignore the change: refused,
    naming the key; where the run runs and logs may change."""
    import yaml

    from raymm.train.run import check_resume

    cfg = load_config("conf/sasrec.yaml", ["output.run_name=r"])
    check_resume(cfg, "r", str(tmp_path))  # a first launch: nothing to compare with
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))  # as jobs/train.py
    check_resume(cfg, "r", str(tmp_path))
    check_resume(load_config("conf/sasrec.yaml", ["output.run_name=r", "train.num_workers=1",
                                                  "mlflow.log_model=false"]), "r", str(tmp_path))
    changed = load_config("conf/sasrec.yaml", ["output.run_name=r", "train.lr=0.01", "method.sasrec.max_len=20"])
    with pytest.raises(ConfigError, match=r"method.sasrec.max_len: 50 -> 20; train.lr: 0.001 -> 0.01"):
        check_resume(changed, "r", str(tmp_path))


def test_checkpoints_carry_their_config_and_refuse_another(tmp_path):
    """Ray resumes whatever checkpoints it finds under a run's name, finished runs included, even
    when the run directory's config.yaml is gone: the checkpoints' own config record is checked."""
    import yaml

    from raymm.train.run import CONFIG_RECORD, check_checkpoint_config

    storage = str(tmp_path / "ray_results")
    cfg = load_config("conf/ptmrec.yaml", ["output.run_name=r"])
    check_checkpoint_config(cfg, storage, "r-tune")  # first launch: records the config
    record = tmp_path / "ray_results" / "r-tune" / CONFIG_RECORD
    assert yaml.safe_load(record.read_text()) == cfg.model_dump()
    (tmp_path / "ray_results" / "r-tune" / "checkpoint_2026-12-02_20-00-00.000000").mkdir()
    check_checkpoint_config(cfg, storage, "r-tune")  # the same config resumes
    check_checkpoint_config(load_config("conf/ptmrec.yaml", ["output.run_name=other", "train.num_workers=1"]),
                            storage, "r-tune")  # where it runs and logs may change
    changed = load_config("conf/ptmrec.yaml", ["output.run_name=r", "method.ptmrec.tune_lr=null"])
    with pytest.raises(ConfigError, match=r"checkpoints at .*r-tune were written by a run with a different "
                                          r"config \(method.ptmrec.tune_lr: 0.001 -> None; .*raymm_config.yaml\)"):
        check_checkpoint_config(changed, storage, "r-tune")
    assert yaml.safe_load(record.read_text()) == cfg.model_dump()  # the refusal rewrote nothing
    record.unlink()  # checkpoints an older raymm wrote: what trained them is unknown
    with pytest.raises(ConfigError, match=r"have no record of the config that wrote them"):
        check_checkpoint_config(cfg, storage, "r-tune")
    assert not record.exists()


def test_a_run_from_before_an_option_existed_relaunches_while_the_option_is_at_its_default(tmp_path):
    import yaml

    from raymm.train.run import check_resume

    cfg = load_config("conf/promptmm.yaml", ["output.run_name=r"])
    tree = cfg.model_dump()
    del tree["method"]["promptmm"]["teacher"]["embedding_dim"]  # as a config.yaml written before it was added
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    check_resume(cfg, "r", str(tmp_path))
    with pytest.raises(ConfigError, match=r"method.promptmm.teacher.embedding_dim: '<unset>' -> 16"):
        check_resume(load_config("conf/promptmm.yaml", ["output.run_name=r", "method.promptmm.teacher.embedding_dim=16"]),
                     "r", str(tmp_path))
