"""Typed, validated job configuration.

A config is YAML validated into :class:`Config` (pydantic, ``extra="forbid"``): an unknown key, a
wrong type or an out-of-range value is an error that names the dotted key. Files compose: each
``--config`` file is deep-merged over the previous ones (later wins), and a file may start from
others with ``include: [base.yaml, ...]`` (paths relative to it). A later file or an override that
sets a different ``method.name`` replaces the method section. Command-line overrides are
``dotted.key=value`` pairs whose values are parsed as YAML (``train.lr=1e-3``,
``train.fanouts=[10,5]``).

The method is picked with ``method.name``; its options live under ``method.<name>.*`` (a
discriminated union over :data:`raymm.methods.registry.METHODS`), so a key of another method is an
error that names it.

Example::

    cfg = load_config(["conf/promptmm.yaml"], ["train.epochs=3", "method.promptmm.distill.tau_pair=0.5"])
    cfg.method.promptmm.distill.tau_pair  # 0.5
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, ValidationError, create_model, model_validator

from raymm.configbase import ConfigError, _Section, parse_yaml  # noqa: F401  (re-exported)
from raymm.methods.registry import METHODS


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
    num_categories: int = Field(8, ge=0)  # item categories (semantic labels); 0 = no item table
    text_words: int = Field(0, ge=0)  # words of each item's text (items/ column text); 0 = no text
    sequential: bool = False  # histories follow latent item transitions (the sequential family's data)
    transition: float = Field(3.0, ge=0)  # sequential: weight of the transition from the previous item
    split: Literal["fraction", "loo"] = "fraction"  # val/test: latest fractions | leave-one-out (last test, 2nd-last val)
    seed: int = 0

    @model_validator(mode="after")
    def _split_options(self) -> "SyntheticConfig":
        defaults = type(self).model_fields
        changed = {k for k in ("val_fraction", "test_fraction", "transition") if getattr(self, k) != defaults[k].default}
        if self.split == "loo" and changed & {"val_fraction", "test_fraction"}:
            raise ValueError("data.synthetic.val_fraction/test_fraction apply to split: fraction, not loo")
        if not self.sequential and "transition" in changed:
            raise ValueError("data.synthetic.transition applies to sequential: true")
        return self


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
        if self.source == "synthetic" and self.path:
            raise ValueError(f"data.path is {self.path!r} but data.source is 'synthetic', which ignores it; "
                             "set data.source=path to train on it")
        return self


class ModelConfig(_Section):
    """Sizes shared by every method's models: ``embedding_dim`` (teacher and student alike),
    ``num_layers`` (the student's / backbone's propagation depth) and the init of ID embeddings."""

    embedding_dim: int = Field(32, gt=0)
    num_layers: int = Field(2, ge=0)
    init_std: float = Field(0.1, gt=0)


def _method_sections():
    """One section class per registered method: ``name`` plus its own options under ``<name>``."""
    sections = []
    for name, method in METHODS.items():
        fields: dict[str, Any] = {"name": (Literal[name], name)}
        if method.config_cls is not None:
            fields[name] = (method.config_cls, Field(default_factory=method.config_cls))
        sections.append(create_model(f"{name.title()}MethodSection", __base__=_Section, **fields))
    return tuple(sections)


MethodConfig = Annotated[Union[_method_sections()], Field(discriminator="name")]


class TrainConfig(_Section):
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(2048, gt=0)
    lr: float = Field(1e-2, gt=0)
    optimizer: Literal["adam", "lazy_adam"] = "adam"  # lazy_adam: only the ID-embedding rows a batch reads are updated
    reg_weight: float = Field(1e-4, ge=0)
    fanouts: list[int] = Field(default_factory=lambda: [10, 10])
    propagation: Literal["auto", "full", "sampled"] = "auto"  # graph methods: exact full-graph or sampled blocks
    materialize: Literal["auto", "always", "never"] = "auto"  # training rows read once into the object store
    num_workers: int = Field(2, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(0.5, gt=0)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_SPREAD"] = "PACK"  # of the workers over nodes
    patience: int = Field(5, gt=0)
    shuffle_buffer_rows: int = Field(10_000, ge=0)
    prefetch: int = Field(1, ge=0)  # batches built ahead in a background thread while a step trains (0 = off)
    max_failures: int = Field(0, ge=-1)
    resource_wait_s: float = Field(0.0, ge=0)  # autoscaling clusters: how long to wait for room for the workers
    poll_interval_s: float = Field(0.5, gt=0)  # Ray Train's controller polls its workers this often (Ray: 2 s)
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
    mask_history: bool = False  # sequential methods: never rank items already in the user's history

    @model_validator(mode="after")
    def _select(self) -> "EvalConfig":
        if any(k <= 0 for k in self.ks):
            raise ValueError("eval.ks must be positive")
        name, _, k = self.select_metric.partition("@")
        if name not in {"recall", "ndcg", "precision", "hit", "mrr"} or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(f"eval.select_metric {self.select_metric!r} must be <recall|ndcg|precision|hit|mrr>@K "
                             "with K in eval.ks")
        return self


class MlflowConfig(_Section):
    tracking_uri: str | None = None  # None: sqlite:///<output.dir>/mlflow.db
    experiment: str = "raymm"
    log_model: bool = True  # log the served model (the pyfunc recommender) in the job's run
    registered_model: str | None = "raymm-{method}"  # register it under this name ({method}: method.name); None: log only


class OutputConfig(_Section):
    dir: str = "outputs"  # run records, cached synthetic data, the default MLflow store (driver side)
    run_name: str | None = None  # None: derived from the config; same name resumes
    # Ray Train/Tune storage: checkpoints under <storage>/ray_results, sweep state under <storage>/tune.
    # A path every node sees, or a URI (s3://bucket/prefix, gs://...). None: ``dir``.
    storage: str | None = None


class Config(_Section):
    method: MethodConfig = Field(default_factory=lambda: {"name": DEFAULT_METHOD}, validate_default=True)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _depth(self) -> "Config":
        need = METHODS[self.method.name].min_fanout_layers(self)
        if len(self.train.fanouts) < need:
            raise ValueError(f"train.fanouts has {len(self.train.fanouts)} layer(s); method {self.method.name} "
                             f"needs {need}")
        if self.eval.mask_history and METHODS[self.method.name].family != "sequential":
            raise ValueError(f"eval.mask_history applies to sequential methods; {self.method.name} always masks "
                             "the user's training items")
        return self


DEFAULT_METHOD = "promptmm"
_MOVED = {"parity": "method.promptmm.parity", "prompt": "method.promptmm.prompt",
          "teacher": "method.promptmm.teacher", "distill": "method.promptmm.distill", "model.name": "method.name"}


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        if node.get(part) is None:  # absent, or an optional mapping left null (e.g. modality_weights)
            node[part] = {}
        child = node[part]
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def _method_name(tree: dict[str, Any]) -> Any:
    method = tree.get("method")
    return method.get("name") if isinstance(method, dict) else None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in ``over`` replaces. A ``method.name``
    in ``over`` that differs from ``base``'s replaces the whole method section (a method file
    layered on top picks a new method; the old one's options go with it)."""
    out = copy.deepcopy(base)
    if _method_name(over) is not None and _method_name(over) != _method_name(out):
        out.pop("method", None)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _error_key(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] == "method" and parts[1] in METHODS:
        del parts[1]  # the discriminated union's tag
    return ".".join(parts) or "<root>"


def _format_errors(err: ValidationError, source: str, tree: dict | None = None) -> str:
    """One line: ``invalid config (<source>): <key>: <problem>; <key>: <problem> ...``."""
    lines = []
    method = _method_name(tree or {}) or DEFAULT_METHOD
    for e in err.errors():
        key = _error_key(e["loc"])
        if e["type"] == "extra_forbidden":
            hint = ""
            if key in _MOVED:
                hint = f" (moved to {_MOVED[key]})"
            elif key.startswith("method.") and key.split(".")[1] in METHODS:
                other = key.split(".")[1]
                hint = f" (method.name is {method!r}; method.{other}.* applies to method {other} only)"
            lines.append(f"{key}: unknown key{hint}")
        elif e["type"] == "union_tag_invalid":
            got = e.get("input")
            got = got.get("name") if isinstance(got, dict) else got
            lines.append(f"{key}.name: unknown method {got!r} (known: {sorted(METHODS)})")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            lines.append(f"{key}: {msg}" + ("" if isinstance(got, dict) else f" (got {got!r})"))
    return f"invalid config ({source}): " + "; ".join(lines)


def build_config(tree: dict[str, Any] | None, overrides: list[str] = (), source: str = "<dict>") -> Config:
    """Validate a config tree plus ``key=value`` overrides into a :class:`Config`."""
    tree = copy.deepcopy(tree or {})
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        value = parse_yaml(raw, f"override {key.strip()}")
        if key.strip() == "method.name" and value != _method_name(tree):
            tree["method"] = {}  # a new method: the previous one's options go with it
        _set_dotted(tree, key.strip(), value)
    if isinstance(tree.get("method"), dict):
        tree["method"].setdefault("name", DEFAULT_METHOD)
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source, tree)) from None


def read_tree(path: str | Path, _seen: tuple = ()) -> dict[str, Any]:
    """A config file as a tree, its ``include:`` files merged first (in order, then the file itself)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    if path.resolve() in _seen:
        raise ConfigError(f"config file {path}: include cycle ({' -> '.join(str(p) for p in _seen)})")
    tree = parse_yaml(path.read_text(), str(path)) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    includes = tree.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"config file {path}: include must be a list of file paths")
    out: dict[str, Any] = {}
    for inc in includes:
        out = merge(out, read_tree(path.parent / inc, _seen + (path.resolve(),)))
    return merge(out, tree)


def load_config(paths: str | Path | list | None = None, overrides: list[str] = ()) -> Config:
    """Read the YAML file(s) ``paths`` (merged in order, later wins; none: the defaults) and apply
    ``overrides``."""
    if paths is None:
        paths = []
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    tree: dict[str, Any] = {}
    for p in paths:
        tree = merge(tree, read_tree(p))
    return build_config(tree, overrides, " + ".join(str(p) for p in paths) or "<defaults>")


def flatten_tree(tree: dict) -> dict[str, Any]:
    """Dotted-key view of a nested mapping: {"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            out[prefix] = node

    walk("", tree)
    return out


def flatten(cfg: Config) -> dict[str, Any]:
    """Dotted-key view of a config (for MLflow params)."""
    return flatten_tree(cfg.model_dump())
