"""``method.name: ptmrec``: PTMRec (Zhang, Luo, Zhang and Fang, "Bridging Domain Gaps between
Pretrained Multimodal Models and Recommendations", arXiv 2502.15542; spec
``../shared/docs/methods.md``, "PTMRec"; the paper has no public code). A pre-trained text encoder
(the packaged all-MiniLM-L6-v2) is tuned with a PEFT adapter under guidance from a recommender.

Stage 1 (``recommender``) trains LightGCN-M on the frozen encoder's item text vectors; stage 2
(``tune``) trains the adapter and the recommender with BPR plus the knowledge transfer from stage 1
(:mod:`raymm.methods.ptmrec.tasks`). The dataset needs item texts (``items/`` column ``text``);
the driver reads them tokenised (``jobs/encode_text.py --tokens T`` stores them with the dataset,
tokenised by Ray Data) or tokenises them itself, and encodes them once with the frozen encoder."""

from __future__ import annotations

import numpy as np

from raymm.errors import InputError
from raymm.methods.base import Method, Stage
from raymm.methods.ptmrec.cache import ItemTextCache
from raymm.methods.ptmrec.config import PTMRecConfig
from raymm.methods.ptmrec.tasks import RecommenderTask, TuneTask
from raymm.models.text_encoder import TextEncoder, tokenize


def frozen_text_vectors(tokens: dict[str, np.ndarray]) -> np.ndarray:
    """(I, 384) float32 item text vectors of the frozen encoder (stage 1's features)."""
    cache = ItemTextCache(tokens, every=1)
    cache.refresh(TextEncoder("none"))
    return cache.cache.numpy().astype(np.float32)


class PTMRecMethod(Method):
    name = "ptmrec"
    config_cls = PTMRecConfig

    def check(self, cfg, dataset) -> None:
        super().check(cfg, dataset)
        if not dataset.manifest.item_files:
            raise InputError(f"method ptmrec needs item texts; dataset {dataset.uri} has no item table (items/)")

    def precompute(self, cfg, dataset, shared) -> None:
        from raymm.data.text_features import item_texts, read_item_tokens, tokens_file

        stored = read_item_tokens(dataset, cfg.method.ptmrec.max_tokens)
        if stored is not None:  # tokenised once with Ray Data (jobs/encode_text.py --tokens)
            print(f"[raymm] ptmrec: item tokens from {tokens_file(cfg.method.ptmrec.max_tokens)}", flush=True)
            shared.extras["tokens"] = stored
        else:
            shared.extras["tokens"] = tokenize(item_texts(dataset)["text"].tolist(), cfg.method.ptmrec.max_tokens)
        shared.features = {"text": frozen_text_vectors(shared.extras["tokens"])}

    def stages(self, cfg):
        o = cfg.method.ptmrec
        return [Stage("recommender", RecommenderTask, o.stage1_epochs, o.stage1_patience),
                Stage("tune", TuneTask, cfg.train.epochs, cfg.train.patience)]

    def after_stage(self, stage, payload, shared) -> None:
        if stage.name == "recommender":
            shared.extras["recommender"] = payload


METHOD = PTMRecMethod()
