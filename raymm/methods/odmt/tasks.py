"""ODMT's single joint stage: every branch's in-batch softmax CE at every position of the batch's
segments plus online KD between branches (ID -> each modality, ensemble -> ID), weighted by the
sigmoid ramp-up (Ji et al., ACM MM 2023)."""

from __future__ import annotations

import torch
from torch import nn

from raymm.methods.odmt.losses import in_batch_ce, in_batch_logits, inclusion_log_prob, online_kd, ramp_up
from raymm.methods.sequential import SequentialTask
from raymm.models.odmt import ODMTRec
from raymm.sequences import next_item_sums


class ODMTTask(SequentialTask):
    def build(self) -> nn.Module:
        o = self.options()
        return ODMTRec(self.graph.num_items, self.cfg.model.embedding_dim, o.max_len, self.shared.features,
                       o.item_layers, o.item_heads, o.num_blocks, o.num_heads, o.dropout, self.cfg.model.init_std)

    def setup(self, rank: int, world: int, device) -> None:
        super().setup(rank, world, device)
        self.pop = torch.tensor(self.shared.extras["item_pop"]).float().to(device)
        mode = self.options().history_negatives
        self.drop_history = mode == "drop" or (mode == "as_eval" and self.cfg.eval.mask_history)

    def loss(self, model, batch):
        o, rec = self.options(), self.module
        valid = batch.valid
        targets = batch.targets[valid]  # (N,)
        segment = torch.cat([batch.windows - 1, batch.targets[:, -1:]], 1)  # (B, L+1) item ids, -1 = padding
        cands = torch.unique(segment[segment >= 0])  # (C,) the batch's distinct items
        states, vec = model(batch.windows, all_positions=True, candidates=cands + 1)
        labels = torch.searchsorted(cands, targets)
        not_negative = None  # (N, C) when dropped: the candidate is in the position's own segment
        if self.drop_history:
            not_negative = (segment[:, :, None] == cands[None, None, :]).any(1)[valid.nonzero()[:, 0]]
        log_q = inclusion_log_prob(self.pop[cands], int((segment >= 0).sum())) if o.popularity_debias else \
            torch.zeros(len(cands), device=cands.device)
        logits = {b: in_batch_logits(states[b][valid], vec[b], labels, not_negative, log_q) for b in rec.branches}
        parts = {}
        total = 0.0
        for b in rec.branches:
            ce = in_batch_ce(logits[b], labels)
            total = total + ce
            parts[f"ce_{b}"] = ce.item()
        if o.kd_weight:
            weight = o.kd_weight * ramp_up(self.epoch, o.ramp_up_epochs)
            ensemble = torch.stack([logits[b] for b in rec.branches]).mean(0)
            kd = sum(online_kd(logits[m], logits["id"], o.tau) for m in rec.modalities)
            kd = kd + online_kd(logits["id"], ensemble, o.tau)
            total = total + weight * kd
            parts["kd"] = kd.item()
        return total * batch.weight, parts

    @classmethod
    def loss_label(cls, cfg) -> str:
        return "in-batch CE per branch" + (" + ramped online KD" if cfg.method.odmt.kd_weight else "")

    def eval_sums(self, which: str) -> torch.Tensor:
        rec = self.ranking_module()
        table = rec.item_table()  # once per evaluation

        def score(windows):
            states = rec.states(windows)
            return torch.stack([states[b] @ table[b].T for b in rec.branches]).mean(0)

        return next_item_sums(score, self.seq, self.eval_examples[which], self.options().max_len, self.cfg.eval.ks,
                              self.cfg.eval.mask_history, self.device, self.cfg.eval.user_batch_size)
