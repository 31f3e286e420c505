"""``method.kdsr.*``: KDSR's options (spec: ``../shared/docs/methods.md``, "KDSR"); the SASRec
backbone's options are SASRec's (:class:`raymm.methods.sasrec.config.SASRecConfig`)."""

from __future__ import annotations

from pydantic import Field, field_validator

from raymm.methods.sasrec.config import SASRecConfig


class KDSRConfig(SASRecConfig):
    tau: float = Field(1.5, gt=0)  # temperature of the holistic correlation regression
    num_subspaces: int = Field(8, gt=0)  # D: sub-spaces of the dissected correlation vector
    num_codes: int = Field(50, gt=1)  # K: correlation codes (k-means over sampled training pairs)
    code_fit_pairs: int = Field(100_000, gt=0)  # training pairs sampled (driver) to fit the K codes
    pairs_per_window: int = Field(32, gt=0)  # item pairs per window for the code loss (sampled)
    # modality -> [holistic weight, code weight]; null = the paper's (4, 4) per modality, (0.5, 0.5) for "text".
    # When given, its keys must be exactly the dataset's modalities.
    weights: dict[str, list[float]] | None = None
    holistic: bool = True  # holistic correlation supervision (false: "w/o holistic")
    codes: bool = True  # dissected correlation codes (false: "w/o codes")
    slow_lr_divisor: float = Field(4.0, ge=1)  # asynchronous learning: modality tables at lr / this (1: "w/o async")
    seed: int = 0  # pair sampling and k-means of the codes

    @field_validator("weights")
    @classmethod
    def _pairs(cls, v):
        if v is not None and any(len(w) != 2 or min(w) < 0 for w in v.values()):
            raise ValueError("weights: modality -> [holistic weight, code weight], both >= 0")
        return v

    def weights_for(self, modalities: list[str]) -> dict[str, tuple[float, float]]:
        if self.weights is None:
            return {m: (0.5, 0.5) if m == "text" else (4.0, 4.0) for m in modalities}
        return {m: tuple(self.weights[m]) for m in modalities}
