"""Ray Tune sweeps over any training-config key (Ray Train V2 pattern: each trial is a function that
builds a ``TorchTrainer`` and forwards its per-epoch reports to Tune with ``TuneReportCallback``).

A sweep file (``conf/tune/*.yaml``) names the training config the trials start from, fixed
overrides, the search space (dotted keys), the search algorithm (Optuna, seeded; random; grid), the
ASHA scheduler on the validation selection metric, trial resources and concurrency, and where the champion is
registered. Selection uses validation only (``eval.select_metric`` of the base config); test is
computed for the chosen trial alone. Trials run the method's stages through the same orchestrator
as the train job (:mod:`raymm.train.stages`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from raymm.config import Config, ConfigError, _format_errors, _Section, _set_dotted, build_config, read_tree
from raymm.configbase import parse_yaml
from raymm.methods.base import Stage
from raymm.methods.registry import get_method
from raymm.storage import checkpoint_dirs, join
from raymm.tracking import metric_key


def sweep_metric(cfg: Config) -> str:
    """Tune/MLflow name of the selection metric (``eval.select_metric``, MLflow-safe: ``val_recall_at_20``)."""
    return metric_key(f"val_{cfg.eval.select_metric}")


class SearchParam(_Section):
    """One searched key: ``choice``/``grid`` over ``values``, or ``uniform``/``loguniform``/``randint``
    over ``[low, high]``."""

    type: Literal["choice", "grid", "uniform", "loguniform", "randint"]
    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _shape(self) -> "SearchParam":
        if self.type in ("choice", "grid"):
            if not self.values:
                raise ValueError(f"'{self.type}' needs a non-empty 'values' list")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"'{self.type}' needs low < high")
        elif self.type == "loguniform" and self.low <= 0:
            raise ValueError("'loguniform' needs low > 0")
        return self


class SearchConfig(_Section):
    algorithm: Literal["optuna", "random", "grid"] = "optuna"
    num_samples: int = Field(8, gt=0)  # trials (grid: repetitions of the grid)
    seed: int = 0


class SchedulerConfig(_Section):
    type: Literal["asha", "fifo"] = "asha"
    grace_period: int = Field(1, gt=0)  # epochs before a trial can be stopped
    reduction_factor: float = Field(2.0, gt=1)


class ResourcesConfig(_Section):
    max_concurrent_trials: int = Field(1, gt=0)
    trial_driver_cpus: float = Field(0.01, ge=0)  # the trial function itself; its workers ask for train.* resources
    max_failures: int = Field(0, ge=-1)  # retries of a crashed trial


class RegisterConfig(_Section):
    model_name: str = "raymm-student"  # the teacher is registered as <model_name>-teacher
    alias: str = "champion"
    top_k: int = Field(20, gt=0)  # default K of the served model's predict


class SweepConfig(_Section):
    name: str = "sweep"  # the same name resumes
    base: str = "conf/promptmm.yaml"  # training config the trials start from (its include: files too)
    overrides: list[str] = Field(default_factory=list)  # fixed dotted.key=value for every trial
    space: dict[str, SearchParam]
    search: SearchConfig = Field(default_factory=SearchConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    teacher_checkpoint: str | None = None  # PromptMM: reuse one saved teacher in every trial
    stage: str | None = None  # the stage each trial stops after and is selected on (null: the method's last)
    state_save_s: float = Field(2.0, gt=0)  # how often the sweep's own state is saved (what a driver crash can lose)
    registry: RegisterConfig = Field(default_factory=RegisterConfig)


def load_sweep(path: str, overrides: list[str] = ()) -> tuple[SweepConfig, Config]:
    """Validate a sweep file (+ ``key=value`` overrides of the sweep file itself) and its base config.
    Every searched key must be a valid training-config key for each of its values."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    tree = parse_yaml(p.read_text(), path) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        _set_dotted(tree, key, parse_yaml(raw, f"override {key}"))
    try:
        sweep = SweepConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, path)) from None
    if not Path(sweep.base).is_file():
        raise ConfigError(f"{path}: base config {sweep.base} does not exist")
    sweep.base = os.path.abspath(sweep.base)  # trials run in their own working directories
    if sweep.teacher_checkpoint and "://" not in sweep.teacher_checkpoint:
        if not Path(sweep.teacher_checkpoint).exists():
            raise ConfigError(f"{path}: teacher_checkpoint {sweep.teacher_checkpoint} does not exist")
        sweep.teacher_checkpoint = os.path.abspath(sweep.teacher_checkpoint)
    base = trial_config(sweep, {})
    if sweep.teacher_checkpoint and base.method.name != "promptmm":
        raise ConfigError(f"{path}: teacher_checkpoint is for PromptMM sweeps; the base config's method is "
                          f"{base.method.name!r}")
    if sweep.stage is not None:
        names = [st.name for st in get_method(base.method.name).stages(base)]
        if sweep.stage not in names:
            raise ConfigError(f"{path}: stage {sweep.stage!r} is not a stage of {base.method.name} (its stages: "
                              f"{', '.join(names)})")
        if sweep.teacher_checkpoint and sweep.stage == "teacher":
            raise ConfigError(f"{path}: stage 'teacher' sweeps the teacher, but teacher_checkpoint loads a saved "
                              f"one instead of training it")
    for key, param in sweep.space.items():
        samples = param.values if param.values else [param.low, param.high]
        if param.type == "randint":
            samples = [int(param.low), int(param.high) - 1]
        for value in samples:
            try:
                trial_config(sweep, {key: value})
            except ConfigError as e:
                raise ConfigError(f"{path}: space key {key!r} with value {value!r}: {e}") from None
    return sweep, base


def trial_config(sweep: SweepConfig, params: dict[str, Any]) -> Config:
    """The training config of one trial: base file, fixed overrides, then the trial's values."""
    cfg = build_config(read_tree(sweep.base), sweep.overrides, source=sweep.base)
    tree = cfg.model_dump()
    for key, value in params.items():
        _set_dotted(tree, key, value)
    if sweep.teacher_checkpoint and cfg.method.name == "promptmm":
        _set_dotted(tree, "method.promptmm.teacher.checkpoint", sweep.teacher_checkpoint)
    return build_config(tree, source=f"trial {params}")


def swept_stage(sweep: SweepConfig, cfg: Config) -> Stage:
    """The stage a trial reports and is selected on: ``sweep.stage``, or the method's last one."""
    stages = get_method(cfg.method.name).stages(cfg)
    return next(st for st in stages if st.name == sweep.stage) if sweep.stage else stages[-1]


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    from ray import tune

    out = {}
    for key, p in sweep.space.items():
        if p.type == "grid" or sweep.search.algorithm == "grid":
            out[key] = tune.grid_search(p.values if p.values else [p.low, p.high])
        elif p.type == "choice":
            out[key] = tune.choice(p.values)
        elif p.type == "uniform":
            out[key] = tune.uniform(p.low, p.high)
        elif p.type == "loguniform":
            out[key] = tune.loguniform(p.low, p.high)
        else:
            out[key] = tune.randint(int(p.low), int(p.high))
    return out


def run_trial(config: dict, sweep: dict, dataset_uri: str, storage: str, tracking_uri: str) -> None:
    """One trial (runs in a Tune actor): the method's stages in order, the last one's per-epoch
    reports forwarded to Tune. Relaunched after an interruption, its Train runs (named by the trial
    id) resume from their checkpoints."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from raymm.data.store import load_dataset
    from raymm.train.run import build_shared, run_training
    from raymm.train.stages import StageResult, plan_stages, run_plan

    sweep = SweepConfig.model_validate(sweep)
    cfg = trial_config(sweep, config)
    dataset = load_dataset(dataset_uri, verify_checksums=False)
    shared = build_shared(dataset, cfg)
    name = f"{sweep.name}-{tune.get_context().get_trial_id()}"

    def train(stage, last: bool) -> StageResult:
        out = run_training(cfg, dataset, storage, f"{name}-{stage.name}", stage, shared,
                           callbacks=[TuneReportCallback()] if last else None)
        return StageResult(stage.name, out.state, out.best_model, out.checkpoint_path)

    run_plan(plan_stages(cfg, shared, tracking_uri).until(sweep.stage), shared, train)


def trial_checkpoint(storage: str, sweep: SweepConfig, trial_id: str, stage: str) -> str:
    """The latest checkpoint directory of a trial's stage (each carries that run's best model)."""
    found = checkpoint_dirs(join(storage, f"{sweep.name}-{trial_id}-{stage}"))
    if not found:
        raise FileNotFoundError(f"no checkpoint for trial {trial_id} ({stage}) under {storage}")
    return found[-1]
