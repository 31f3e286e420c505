"""``method.promptmm.*``: PromptMM's options (spec: ``../shared/docs/promptmm.md``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from raymm.configbase import _Section
from raymm.methods.freedom.config import FreedomConfig
from raymm.methods.lattice.config import LatticeConfig


class PromptConfig(_Section):
    """The soft prompt (stage 1 and, in paper mode, stage 2)."""

    enabled: bool = True  # False: the "w/o prompt" ablation
    size: int = Field(16, gt=0)  # k: PCA components of the hard tokens
    dropout: float = Field(0.1, ge=0, lt=1)
    summary_every: int = Field(1, gt=0)  # steps between recomputations of P_i^T X^m


class TeacherConfig(_Section):
    """The multimodal teacher and its stage-1 training. ``backbone``: PromptMM's own teacher,
    FREEDOM (:mod:`raymm.models.freedom`, options in ``freedom``) or LATTICE
    (:mod:`raymm.models.lattice`, options in ``lattice``); the latter two train with their own
    objectives, and ``reg_weight``, ``lr``, ``weight_decay``, ``epochs`` and ``patience`` from here."""

    backbone: Literal["promptmm", "freedom", "lattice"] = "promptmm"
    freedom: FreedomConfig = Field(default_factory=FreedomConfig)  # backbone: freedom
    lattice: LatticeConfig = Field(default_factory=LatticeConfig)  # backbone: lattice
    embedding_dim: int | None = Field(None, gt=0)  # d_T; None: model.embedding_dim (the student's d)
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

    # PromptMM's own teacher's options: with another backbone, setting one is an error, not a no-op
    PROMPTMM_ONLY: ClassVar[tuple[str, ...]] = ("dropout", "model_cat_rate", "soft_token_rate", "feat_soft_token_rate",
                                                "prompt_weight", "feat_mf_weight", "feat_reg_weight")

    @model_validator(mode="after")
    def _no_idle_options(self) -> "TeacherConfig":
        for name, cls in (("freedom", FreedomConfig), ("lattice", LatticeConfig)):
            if self.backbone != name and getattr(self, name) != cls():
                raise ValueError(f"{name}.* options do nothing with backbone={self.backbone} (set backbone: {name})")
        if self.backbone == "promptmm":
            return self
        for name in self.PROMPTMM_ONLY:
            if getattr(self, name) != type(self).model_fields[name].default:
                raise ValueError(f"{name}={getattr(self, name)!r} does nothing with backbone={self.backbone} "
                                 "(PromptMM's own teacher's option)")
        return self


class DistillConfig(_Section):
    """Stage 2: the student's distillation losses (the student trains with ``train.*``)."""

    tau_pair: float = Field(1.0, gt=0)
    tau_list: float = Field(1.0, gt=0)
    list_negatives: int = Field(10, gt=0)  # K
    pair_weight: float = Field(1.0, ge=0)  # lambda_pair (0 switches the term off)
    list_weight: float = Field(1.0, ge=0)  # lambda_list
    emb_weight: float = Field(0.1, ge=0)  # lambda_emb
    reweight: bool = True  # modality-aware re-weighting of the list-wise non-target term
    sce_gamma: float = Field(2.0, gt=0)
    init_from_teacher: bool = False  # student starts from the teacher's final embeddings (smaller: truncated SVD)
    prompt_trainable: bool = True  # the prompt keeps learning from the student's loss


class PromptMMConfig(_Section):
    parity: bool = False  # reproduce the public PromptMM code's loss forms and quirks
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)

    @model_validator(mode="after")
    def _backbone_fits(self) -> "PromptMMConfig":
        backbone = self.teacher.backbone
        if backbone != "promptmm" and self.prompt.enabled:
            raise ValueError(f"teacher.backbone={backbone} has no soft prompt: set prompt.enabled: false")
        if backbone != "promptmm" and self.parity:
            raise ValueError(f"parity reproduces the public PromptMM code, whose teacher is its own (not {backbone})")
        return self
