"""``method.promptmm.*``: PromptMM's options (spec: ``../shared/docs/promptmm.md``)."""

from __future__ import annotations

from pydantic import Field

from raymm.configbase import _Section


class PromptConfig(_Section):
    """The soft prompt (stage 1 and, in paper mode, stage 2)."""

    enabled: bool = True  # False: the "w/o prompt" ablation
    size: int = Field(16, gt=0)  # k: PCA components of the hard tokens
    dropout: float = Field(0.1, ge=0, lt=1)
    summary_every: int = Field(1, gt=0)  # steps between recomputations of P_i^T X^m


class TeacherConfig(_Section):
    """The multimodal teacher and its stage-1 training."""

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
    init_from_teacher: bool = False  # student starts from the teacher's final embeddings
    prompt_trainable: bool = True  # the prompt keeps learning from the student's loss


class PromptMMConfig(_Section):
    parity: bool = False  # reproduce the public PromptMM code's loss forms and quirks
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
