"""PTMRec's two stages (Zhang et al., arXiv 2502.15542; ``../shared/docs/methods.md``, "PTMRec").

- :class:`RecommenderTask`: stage 1, LightGCN-M on the frozen encoder's text vectors, BPR. It
  learns which items each user prefers in the encoder's feature space; alone it is the
  frozen-encoder baseline.
- :class:`TuneTask`: stage 2, the encoder's PEFT adapter and the recommender (started from stage 1)
  trained with BPR plus the knowledge transfer from the fixed stage-1 model.
"""

from __future__ import annotations

import torch
from torch import nn

from raymm.losses import bpr_loss, l2_penalty
from raymm.methods.base import Task, triplet
from raymm.methods.ptmrec.losses import cosine_logits, similarity_kl
from raymm.methods.ptmrec.model import PTMRecModel
from raymm.models.lightgcn_m import LightGCNM
from raymm.models.registry import from_payload


class RecommenderTask(Task):
    """Stage 1: ``L = BPR + train.reg_weight ||E_batch||^2`` on LightGCN-M with the frozen text
    vectors (``shared.features["text"]``)."""

    def build(self) -> nn.Module:
        m, g = self.cfg.model, self.graph
        return LightGCNM(g.num_users, g.num_items, {"text": self.shared.features["text"]}, m.embedding_dim,
                         m.num_layers, self.cfg.method.ptmrec.feature_weight, m.init_std, self.normalization)


class TuneTask(Task):
    r"""Stage 2: ``L = BPR + train.reg_weight ||E_batch||^2 + a KL(P_ii || Q_ii) + b KL(P_ui || Q_ui)``.

    Over the items B encoded afresh this step (the batch's positives and negatives, at most
    ``fresh_items`` of them) and the batch's users:
    :math:`P_{ii}` = softmax over :math:`j \in B \setminus \{i\}` of cos(stage-1 item embeddings) / tau,
    :math:`Q_{ii}` the same over the tuned encoder's text vectors; :math:`P_{ui}` = softmax over
    :math:`j \in B` of cos(stage-1 user, stage-1 item) / tau, :math:`Q_{ui}` the same between the
    stage-2 user embedding and the projected tuned text vector S(enc(text_j)). a, b =
    ``kt_item_weight``, ``kt_user_weight`` (both 0: "w/o knowledge transfer", plain BPR tuning)."""

    def build(self) -> nn.Module:
        o, m, g = self.cfg.method.ptmrec, self.cfg.model, self.graph
        return PTMRecModel(g.num_users, g.num_items, m.embedding_dim, m.num_layers, self.shared.extras["tokens"],
                           o.peft, o.lora_rank, o.lora_alpha, o.prompt_tokens, o.feature_weight, m.init_std,
                           self.normalization, o.refresh_every, o.fresh_items)

    def on_fresh_start(self, device) -> None:
        """The recommender starts where stage 1 left it."""
        self.module.rec.load_state_dict(self.shared.extras["recommender"]["state_dict"])

    def optimizer(self, params) -> torch.optim.Optimizer:
        o = self.cfg.method.ptmrec
        adapter = [p for p in self.module.encoder.parameters() if p.requires_grad]
        ids = {id(p) for p in adapter}
        rest = [p for p in params if p.requires_grad and id(p) not in ids]
        return torch.optim.Adam([{"params": rest, "lr": o.tune_lr or self.cfg.train.lr},
                                 {"params": adapter, "lr": o.encoder_lr}])

    def setup(self, rank: int, world: int, device) -> None:
        super().setup(rank, world, device)
        stage1 = from_payload(self.shared.extras["recommender"], self.shared.features).to(device)
        self.t_users, self.t_items = stage1.full_embeddings(self.adj)  # fixed: the knowledge to transfer

    @classmethod
    def loss_label(cls, cfg) -> str:
        o = cfg.method.ptmrec
        kt = o.kt_item_weight or o.kt_user_weight
        return "BPR + L2" + (" + knowledge transfer (KL)" if kt else "")

    def loss(self, model, batch):
        o = self.cfg.method.ptmrec
        emb, ego, items, text = model(batch)
        bpr = bpr_loss(*triplet(emb, batch))
        total = bpr + self.cfg.train.reg_weight * l2_penalty(*triplet(ego, batch))
        parts = {"bpr": bpr.item()}
        if o.kt_item_weight:
            t = cosine_logits(self.t_items[items], self.t_items[items], exclude_diagonal=True)
            kl = similarity_kl(t, cosine_logits(text, text, exclude_diagonal=True), o.tau)
            total = total + o.kt_item_weight * kl
            parts["kt_item"] = kl.item()
        if o.kt_user_weight:
            users = torch.unique(batch.seeds[batch.user_pos])  # seeds are sorted node ids (users first)
            t = cosine_logits(self.t_users[users], self.t_items[items])
            s = cosine_logits(emb[torch.searchsorted(batch.seeds, users)], self.module.rec.extractors["text"](text))
            kl = similarity_kl(t, s, o.tau)
            total = total + o.kt_user_weight * kl
            parts["kt_user"] = kl.item()
        self.module.step()
        return total, parts
