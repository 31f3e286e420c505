"""Typed, validated job configuration.

A config is YAML validated into :class:`Config` (pydantic, ``extra="forbid"``): an unknown key, a
wrong type or an out-of-range value is an error that names the dotted key. Command-line overrides
are ``dotted.key=value`` pairs whose values are parsed as YAML scalars (``train.lr=1e-3``,
``train.fanouts=[10,5]``).

Example::

    cfg = load_config("conf/default.yaml", ["train.epochs=3"])
    cfg.train.epochs  # 3
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raymm.errors import InputError


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` as a string; accept exponent floats without a dot, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


class ConfigError(InputError):
    """A configuration file or override is invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class SyntheticConfig(_Section):
    """Parameters of the synthetic generator (:mod:`raymm.data.synthetic`)."""

    num_users: int = Field(2000, gt=0)
    num_items: int = Field(1000, gt=0)
    num_interactions: int = Field(40_000, gt=0)
    latent_dim: int = Field(16, gt=0)
    popularity_exponent: float = Field(0.8, ge=0)
    affinity: float = Field(3.0, ge=0)
    modalities: dict[str, int] = Field(default_factory=lambda: {"image": 64, "text": 96})
    feature_noise: float = Field(0.5, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=0.5)
    test_fraction: float = Field(0.1, ge=0, lt=0.5)
    shard_rows: int = Field(1_000_000, gt=0)
    seed: int = 0


class DataConfig(_Section):
    """Where the dataset comes from.

    ``source: synthetic`` generates (once, cached under ``output.dir``) from ``synthetic``;
    otherwise ``path`` is a canonical dataset directory or URI (see :mod:`raymm.data.store`).
    """

    source: Literal["synthetic", "path"] = "synthetic"
    path: str | None = None
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)

    @model_validator(mode="after")
    def _path_given(self) -> "DataConfig":
        if self.source == "path" and not self.path:
            raise ValueError("data.path is required when data.source is 'path'")
        return self


class ModelConfig(_Section):
    """What to train. ``lightgcn``: the ID-only LightGCN alone (BPR). ``promptmm``: PromptMM's
    teacher (stage 1) then the LightGCN student distilled from it (stage 2). ``num_layers`` is the
    student's (LightGCN's) depth; ``embedding_dim`` is shared by teacher and student."""

    name: Literal["lightgcn", "promptmm"] = "lightgcn"
    embedding_dim: int = Field(32, gt=0)
    num_layers: int = Field(2, ge=0)
    init_std: float = Field(0.1, gt=0)


class PromptConfig(_Section):
    """PromptMM's soft prompt (stage 1 and, in paper mode, stage 2)."""

    enabled: bool = True  # False: the "w/o prompt" ablation
    size: int = Field(16, gt=0)  # k: PCA components of the hard tokens
    dropout: float = Field(0.1, ge=0, lt=1)
    summary_every: int = Field(1, gt=0)  # steps between recomputations of P_i^T X^m


class TeacherConfig(_Section):
    """PromptMM's teacher and its stage-1 training."""

    num_layers: int = Field(2, ge=0)  # ID-GNN layers
    dropout: float = Field(0.4, ge=0, lt=1)  # on reduced modality features
    model_cat_rate: float = Field(0.1, ge=0)  # a_mc
    soft_token_rate: float = Field(0.1, ge=0)  # a_sp
    feat_soft_token_rate: float = Field(1.0, ge=0)  # a_fp
    reg_weight: float = Field(1e-4, ge=0)  # lambda_reg
    prompt_weight: float = Field(0.1, ge=0)  # lambda_p
    feat_mf_weight: float = Field(1e-3, ge=0)  # lambda_fm
    feat_reg_weight: float = Field(1e-5, ge=0)  # lambda_feat
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-3, ge=0)  # AdamW
    epochs: int = Field(30, gt=0)
    patience: int = Field(5, gt=0)
    checkpoint: str | None = None  # saved teacher (path or MLflow URI): skip stage 1


class DistillConfig(_Section):
    """PromptMM's stage 2: the student's distillation losses (the student trains with ``train.*``)."""

    tau_pair: float = Field(1.0, gt=0)
    tau_list: float = Field(1.0, gt=0)
    list_negatives: int = Field(10, gt=0)  # K
    pair_weight: float = Field(1.0, ge=0)  # lambda_pair (0 switches the term off)
    list_weight: float = Field(1.0, ge=0)  # lambda_list
    emb_weight: float = Field(0.1, ge=0)  # lambda_emb
    reweight: bool = True  # modality-aware re-weighting of the list-wise non-target term
    sce_gamma: float = Field(2.0, gt=0)
    init_from_teacher: bool = False  # student starts from the teacher's final embeddings
    prompt_trainable: bool = True  # the prompt keeps learning from the student's loss


class TrainConfig(_Section):
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(2048, gt=0)
    lr: float = Field(1e-2, gt=0)
    reg_weight: float = Field(1e-4, ge=0)
    fanouts: list[int] = Field(default_factory=lambda: [10, 10])
    num_workers: int = Field(2, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(0.5, gt=0)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_SPREAD"] = "PACK"  # of the workers over nodes
    patience: int = Field(5, gt=0)
    shuffle_buffer_rows: int = Field(10_000, ge=0)
    max_failures: int = Field(0, ge=-1)
    seed: int = 0

    @model_validator(mode="after")
    def _fanouts(self) -> "TrainConfig":
        if any(f == 0 or f < -1 for f in self.fanouts):
            raise ValueError("train.fanouts entries must be positive, or -1 for all neighbours")
        return self


class EvalConfig(_Section):
    ks: list[int] = Field(default_factory=lambda: [10, 20, 50])
    select_metric: str = "recall@20"
    user_batch_size: int = Field(1024, gt=0)
    every: int = Field(1, gt=0)

    @model_validator(mode="after")
    def _select(self) -> "EvalConfig":
        if any(k <= 0 for k in self.ks):
            raise ValueError("eval.ks must be positive")
        name, _, k = self.select_metric.partition("@")
        if name not in {"recall", "ndcg", "precision", "hit"} or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(f"eval.select_metric {self.select_metric!r} must be <recall|ndcg|precision|hit>@K with K in eval.ks")
        return self


class MlflowConfig(_Section):
    tracking_uri: str | None = None  # None: sqlite:///<output.dir>/mlflow.db
    experiment: str = "raymm"
    log_model: bool = True


class OutputConfig(_Section):
    dir: str = "outputs"  # run records, cached synthetic data, the default MLflow store (driver side)
    run_name: str | None = None  # None: derived from the config; same name resumes
    # Ray Train/Tune storage: checkpoints under <storage>/ray_results, sweep state under <storage>/tune.
    # A path every node sees, or a URI (s3://bucket/prefix, gs://...). None: ``dir``.
    storage: str | None = None


class Config(_Section):
    parity: bool = False  # reproduce the public PromptMM code's loss forms and quirks (docs/promptmm.md)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _depth(self) -> "Config":
        need = self.model.num_layers
        if self.model.name == "promptmm":
            need = max(need, self.teacher.num_layers, 2)  # the modality GNN needs two hops
        if len(self.train.fanouts) < need:
            raise ValueError(f"train.fanouts has {len(self.train.fanouts)} layer(s); the model needs {need}")
        return self


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def build_config(tree: dict[str, Any] | None, overrides: list[str] = (), source: str = "<dict>") -> Config:
    """Validate a config tree plus ``key=value`` overrides into a :class:`Config`."""
    tree = dict(tree or {})
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        _set_dotted(tree, key.strip(), parse_yaml(raw))
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read YAML ``path`` (or the defaults when None) and apply ``overrides``."""
    tree: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        tree = parse_yaml(path.read_text()) or {}
        if not isinstance(tree, dict):
            raise ConfigError(f"config file {path}: top level must be a mapping")
        source = str(path)
    return build_config(tree, overrides, source)


def flatten(cfg: Config) -> dict[str, Any]:
    """Dotted-key view of a config (for MLflow params)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = node

    walk("", cfg.model_dump())
    return out
