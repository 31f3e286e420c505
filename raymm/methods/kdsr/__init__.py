"""``method.name: kdsr``: KDSR (Hu, Liu, Li and Kan, ECIR 2024; spec ``../shared/docs/methods.md``).
The frozen modality features teach the recommender's trainable modality embeddings through pair
correlations: holistic (cosine regression) and dissected (K correlation codes). One joint stage on
a SASRec backbone with gated fusion; the served model is that recommender alone."""

from __future__ import annotations

import numpy as np

from raymm.errors import InputError
from raymm.methods.kdsr.config import KDSRConfig
from raymm.methods.kdsr.losses import fit_codes
from raymm.methods.kdsr.tasks import KDSRTask
from raymm.methods.sasrec import SASRecMethod
from raymm.methods.base import Stage


def training_pairs(seq, max_len: int, n: int, seed: int) -> np.ndarray:
    """(n, 2) item pairs that share a training window: a training target and an item at most
    ``max_len`` positions before it in the same timeline."""
    rng = np.random.default_rng(seed)
    train = seq.examples("train")
    train = train[seq.trainable(train)]
    if not len(train):
        raise InputError("KDSR needs users with at least two training interactions")
    pos = train[rng.integers(len(train), size=n)]
    back = np.minimum(pos - seq.indptr[seq.user_of(pos)], max_len)
    other = pos - 1 - (rng.random(n) * back).astype(np.int64)
    return np.stack([seq.items[other], seq.items[pos]], 1)


class KDSRMethod(SASRecMethod):
    name = "kdsr"
    config_cls = KDSRConfig
    needs_features = True

    def check(self, cfg, dataset) -> None:
        super().check(cfg, dataset)
        o = cfg.method.kdsr
        have = set(dataset.manifest.modalities)
        if o.weights is not None and set(o.weights) != have:
            raise InputError(f"method.kdsr.weights names {sorted(o.weights)} but the dataset's modalities are "
                             f"{sorted(have)}: give one [holistic, code] pair per dataset modality")
        small = {m: i.dim for m, i in dataset.manifest.modalities.items() if i.dim < o.num_subspaces}
        if small:
            raise InputError(f"method.kdsr.num_subspaces={o.num_subspaces} exceeds the dimension of {small}")

    def precompute(self, cfg, dataset, shared) -> None:
        super().precompute(cfg, dataset, shared)
        o = cfg.method.kdsr
        if o.codes:
            pairs = training_pairs(shared.extras["sequences"], o.max_len, o.code_fit_pairs, o.seed)
            shared.extras["kdsr_codes"] = {m: fit_codes(x, pairs, o.num_subspaces, o.num_codes, o.seed)
                                           for m, x in shared.features.items()}

    def stages(self, cfg):
        return [Stage("kdsr", KDSRTask, cfg.train.epochs, cfg.train.patience)]


METHOD = KDSRMethod()
