"""PromptMM's multimodal teacher (Wei et al., WWW 2024, https://arxiv.org/abs/2402.17188, Sec. 3.2;
restated in ``../shared/docs/promptmm.md``, "Stage 1").

For each modality m with item features X^m (I, d_m):

    h^m   = Dropout(Linear_{d_m -> d}(X^m + a_fp * rownorm(P_i (P_i^T X^m))))   prompt-enhanced f_R
    f_u^m = A_ui h^m,   f_i^m = A_iu f_u^m                                        one-hop modality GNN
    u0 = E_u + a_sp * rownorm(P_u),  i0 = E_i + a_sp * rownorm(P_i)              prompted ID input
    e_bar = mean_{l=0..L} A^l [u0; i0]                                            ID GNN (LightGCN)
    e^T = e_bar + a_mc * sum_m rownorm(f^m)                                       fusion

On a mini-batch everything runs on the sampled blocks of :mod:`raymm.sampling`: the modality GNN
on the last two blocks (item -> user -> item), the ID GNN on the last L. Full-graph layer-wise
inference (:meth:`PromptMMTeacher.full`) is used for evaluation and for precomputed outputs.

The global prompt summary ``P_i^T X^m`` (d x d_m) is recomputed over ALL items at every training
step by default (``summary_every=1``: exact, and the gradient reaches every item prompt through
it). For catalogues where that is too costly, ``summary_every=N`` recomputes it every N steps without
gradient and reuses it in between (the gradient then reaches the prompt through the ``P_i`` factor
of the batch's items only). Evaluation always uses a fresh summary.

In eval mode (no dropout: evaluation, and the frozen teacher whose prompt PromptMM's stage 2 keeps
training) the same f_R is computed in factored form, without the (I x d x d_m) products: the item
prompts are affine in the hard tokens, P_i = H~ W~ with H~ = [H_i, 1] (I, k+1) and W~ = [W_i^T; b_i]
(k+1, d), so P_i (P_i^T X^m) = H~ M^m with M^m = W~ (W~^T C^m) and C^m = H~^T X^m (k+1, d_m), which
is fixed while the hard tokens and features are; and a linear f_R maps the prompt term as
(H~ (M^m W_R^T)) / ||H~ M^m|| beside X^m W_R^T + b_R, fixed while f_R is frozen
(:meth:`PromptMMTeacher._reduced_eval`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from raymm.models.prompt import SoftPrompt
from raymm.models.extractors import StudentExtractor, register_features
from raymm.models.propagation import mean_of_layers_full, mean_of_layers_sampled, propagate_block, rows
from raymm.models.registry import register
from raymm.sampling import Batch
from raymm.sparse import SparseAdj


@dataclass
class TeacherOutput:
    """Teacher outputs at a batch's seeds (S nodes) or at all nodes (N = U + I).

    Attributes:
        emb: (S, d) fused teacher embeddings e^T.
        ego: (S, d) layer-0 ID embeddings E (for the L2 penalty); None for a frozen teacher's
            precomputed targets (stage 2 has no teacher loss).
        modal: modality -> (S, d) one-hop modality embeddings f^m (f_u^m for users, f_i^m for items).
        prompt: (S, d) prompts P of the seeds, or None without a prompt.
    """

    emb: torch.Tensor
    ego: torch.Tensor | None
    modal: dict[str, torch.Tensor]
    prompt: torch.Tensor | None

    def own(self, batch: Batch) -> "TeacherOutput":
        """The outputs at ``batch``'s own users and items (:meth:`Batch.own`), for :meth:`Batch.compact`."""
        pick = lambda x: None if x is None else batch.own(x)  # noqa: E731
        return TeacherOutput(pick(self.emb), pick(self.ego), {m: pick(f) for m, f in self.modal.items()},
                             pick(self.prompt))


@register("promptmm_teacher", version=1)
class PromptMMTeacher(nn.Module):
    """PromptMM's teacher. See the module docstring for the equations.

    Args:
        num_users: U.
        num_items: I.
        features: modality name -> (I, d_m) float32 features (kept as non-persistent buffers).
        prompt: the soft prompt, or None for the "w/o prompt" ablation.
        dim: d.
        num_layers: L of the ID GNN.
        dropout: dropout on the reduced modality features.
        a_mc, a_sp, a_fp: model_cat_rate, soft_token_rate, feat_soft_token_rate.
        init_std: std of the ID embeddings' normal initialisation.
        summary_every: steps between recomputations of the prompt summary P_i^T X^m.
        normalization: adjacency normalisation it is trained with (recorded for inference).
        extractor: ``linear`` (PromptMM's f_R, a linear per modality) or ``sgfd`` (SGFD's student
            extractor, :class:`~raymm.models.extractors.StudentExtractor`: SGFD on this backbone).

    Example::

        teacher = PromptMMTeacher(5, 7, {"image": torch.randn(7, 16)}, prompt, dim=8, num_layers=2)
        out = teacher(batch)            # TeacherOutput at the batch's seeds
        emb, modal = teacher.full(adj)  # (12, 8), {"image": (12, 8)}
    """

    def __init__(self, num_users: int, num_items: int, features: dict[str, torch.Tensor], prompt: SoftPrompt | None,
                 dim: int, num_layers: int, dropout: float = 0.0, a_mc: float = 0.1, a_sp: float = 0.1,
                 a_fp: float = 1.0, init_std: float = 0.1, summary_every: int = 1, normalization: str = "symmetric",
                 extractor: str = "linear"):
        super().__init__()
        if not features:
            raise ValueError("PromptMM's teacher needs at least one modality (the dataset has none)")
        self.num_users, self.num_items, self.dim, self.num_layers = num_users, num_items, dim, num_layers
        self.a_mc, self.a_sp, self.a_fp, self.summary_every = a_mc, a_sp, a_fp, summary_every
        self.normalization, self.extractor = normalization, extractor
        self.modalities = sorted(features)
        self.embedding = nn.Embedding(num_users + num_items, dim)
        nn.init.normal_(self.embedding.weight, std=init_std)
        self.reducers = nn.ModuleDict()
        for m, d_m in register_features(self, features).items():
            if extractor == "sgfd":
                self.reducers[m] = StudentExtractor(d_m, dim)
            else:
                self.reducers[m] = nn.Linear(d_m, dim)
                nn.init.xavier_uniform_(self.reducers[m].weight)
        self.prompt = prompt
        self.feat_dropout = nn.Dropout(dropout)
        self._steps = 0
        self._cached_summary: dict[str, torch.Tensor] | None = None
        self._fixed_cache: dict[str, tuple] = {}  # m -> (key, H~, C^m, X^m W_R^T + b_R or None), eval mode

    def hparams(self) -> dict:
        return {"num_users": self.num_users, "num_items": self.num_items, "dim": self.dim,
                "num_layers": self.num_layers, "a_mc": self.a_mc, "a_sp": self.a_sp, "a_fp": self.a_fp,
                "summary_every": self.summary_every, "dropout": self.feat_dropout.p, "normalization": self.normalization,
                "feature_dims": {m: int(self.reducers[m].in_features) for m in self.modalities},
                "prompt": self.prompt is not None, "extractor": self.extractor,
                "prompt_dropout": self.prompt.dropout.p if self.prompt is not None else 0.0}

    @classmethod
    def from_payload(cls, payload: dict, features: dict | None) -> "PromptMMTeacher":
        """Rebuild a saved teacher (``{"hparams", "state_dict"}``) around ``features`` (modality ->
        (I, d_m) array); the hard tokens come from the saved state."""
        h, state = payload["hparams"], payload["state_dict"]
        if features is None:
            raise ValueError("a PromptMM teacher needs its dataset's modality features to be rebuilt")
        missing = set(h["feature_dims"]) - set(features)
        if missing:
            raise ValueError(f"the teacher needs modalities {sorted(h['feature_dims'])}, the data lacks {sorted(missing)}")
        prompt = (SoftPrompt(state["prompt.h_user"], state["prompt.h_item"], h["dim"], h.get("prompt_dropout", 0.0))
                  if h["prompt"] else None)
        feats = {m: features[m] for m in h["feature_dims"]}
        teacher = cls(h["num_users"], h["num_items"], feats, prompt, h["dim"], h["num_layers"], h["dropout"],
                      h["a_mc"], h["a_sp"], h["a_fp"], summary_every=h["summary_every"],
                      normalization=h["normalization"], extractor=h["extractor"])
        teacher.load_state_dict(state)
        return teacher

    def features(self, m: str) -> torch.Tensor:
        return getattr(self, f"feat_{m}")

    # --- prompt ----------------------------------------------------------------------------
    def _summary(self, p_items_all: torch.Tensor) -> dict[str, torch.Tensor]:
        """m -> (d, d_m) global summary P_i^T X^m over all items."""
        return {m: p_items_all.T @ self.features(m) for m in self.modalities}

    def _prompt_context(self) -> tuple[torch.Tensor | None, dict[str, torch.Tensor] | None]:
        """(all item prompts or None, summaries) for this step (see module docstring). In eval mode
        the summaries are None: :meth:`_reduced` takes the factored form, which needs none."""
        if self.prompt is None:
            return None, None
        if not self.training:
            return self.prompt.items(), None
        if self.summary_every <= 1:
            p_all = self.prompt.items()
            return p_all, self._summary(p_all)
        if self._cached_summary is None or self._steps % self.summary_every == 0:
            with torch.no_grad():
                self._cached_summary = self._summary(self.prompt.items())
        self._steps += 1
        return None, self._cached_summary

    def _item_prompts(self, item_ids: torch.Tensor, p_all: torch.Tensor | None) -> torch.Tensor:
        return rows(p_all, item_ids) if p_all is not None else self.prompt.items(item_ids)

    def _node_prompts(self, node_ids: torch.Tensor, p_all: torch.Tensor | None) -> torch.Tensor:
        is_user = node_ids < self.num_users
        out = torch.empty(len(node_ids), self.dim, device=node_ids.device)
        out[is_user] = self.prompt.users(node_ids[is_user])
        out[~is_user] = self._item_prompts(node_ids[~is_user] - self.num_users, p_all)
        return out

    # --- modality branch -------------------------------------------------------------------
    def _reduced(self, m: str, item_ids: torch.Tensor | None, p_items: torch.Tensor | None,
                 summary: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """(n, d) h^m for the given items, all I when ``item_ids`` is None (prompt-enhanced feature
        reduction f_R); with a prompt in eval mode in the factored form of :meth:`_reduced_eval`
        (``p_items`` and ``summary`` are then unused)."""
        if self.prompt is not None and not self.training:
            return self._reduced_eval(m, item_ids)
        x = self.features(m) if item_ids is None else self.features(m)[item_ids]
        if p_items is not None:
            x = x + self.a_fp * F.normalize(p_items @ summary[m], dim=1)
        return self.feat_dropout(self.reducers[m](x))

    def _fixed(self, m: str, with_reduced: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(H~ (I, k+1), C^m = H~^T X^m (k+1, d_m), X^m W_R^T + b_R (I, d) or None), computed without
        gradient and cached until a tensor they come from changes (in place, as an optimiser step or
        ``load_state_dict`` does, or by a move to another device)."""
        reducer = self.reducers[m]
        sources = [self.prompt.h_item, self.features(m)] + (list(reducer.parameters()) if with_reduced else [])
        key = tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in sources)
        hit = self._fixed_cache.get(m)
        if hit is None or hit[0] != key:
            with torch.no_grad():
                h = self.prompt.h_item
                h_aff = torch.cat([h, torch.ones(len(h), 1, device=h.device, dtype=h.dtype)], dim=1)
                x = self.features(m)
                hit = (key, h_aff, h_aff.T @ x, reducer(x) if with_reduced else None)
            self._fixed_cache[m] = hit
        return hit[1], hit[2], hit[3]

    def _reduced_eval(self, m: str, item_ids: torch.Tensor | None) -> torch.Tensor:
        """(n, d) h^m in eval mode, the same equation as :meth:`_reduced` in factored form (module
        docstring): with M = W~ (W~^T C^m) (k+1, d_m) and z = H~ M (n, d_m) = P_i (P_i^T X^m),
        h^m = f_R(X^m + a_fp z / ||z||); for a linear f_R, X^m W_R^T + b_R + a_fp (H~ (M W_R^T)) / ||z||.
        The fixed part of a linear f_R is reused only when no gradient can reach f_R's parameters."""
        reducer = self.reducers[m]
        linear = isinstance(reducer, nn.Linear)
        fold = linear and not (torch.is_grad_enabled() and any(p.requires_grad for p in reducer.parameters()))
        h_aff, c, r = self._fixed(m, with_reduced=fold)
        w = torch.cat([self.prompt.item.weight.T, self.prompt.item.bias.unsqueeze(0)])  # (k+1, d)
        mix = w @ (w.T @ c)  # (k+1, d_m)
        if item_ids is not None:
            h_aff = h_aff[item_ids]
        z = h_aff @ mix  # (n, d_m)
        norm = torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min(1e-12)  # as F.normalize
        if fold:
            r = r if item_ids is None else r[item_ids]
            return r + self.a_fp * (h_aff @ (mix @ reducer.weight.T)) / norm
        x = self.features(m) if item_ids is None else self.features(m)[item_ids]
        return reducer(x + self.a_fp * z / norm)

    def _item_signal(self, m: str, node_ids: torch.Tensor, p_all, summary) -> torch.Tensor:
        """(n, d): h^m on item nodes, zeros on user nodes."""
        is_item = node_ids >= self.num_users
        item_ids = node_ids[is_item] - self.num_users
        p_items = self._item_prompts(item_ids, p_all) if self.prompt is not None and self.training else None
        x = torch.zeros(len(node_ids), self.dim, device=node_ids.device)
        x[is_item] = self._reduced(m, item_ids, p_items, summary)
        return x

    # --- forward ---------------------------------------------------------------------------
    def forward(self, batch: Batch) -> TeacherOutput:
        """Teacher outputs at the seeds of a sampled batch (needs max(L, 2) blocks), or at every node
        of a full-propagation batch."""
        p_all, summary = self._prompt_context()
        if batch.full_adj is not None:
            return self._outputs(batch.full_adj, p_all, summary)
        num_seeds = len(batch.seeds)
        blocks = batch.layers(max(self.num_layers, 2))
        modal = {}
        for m in self.modalities:
            x = self._item_signal(m, blocks[-2].src_nid, p_all, summary)
            user_side = propagate_block(x, blocks[-2])  # f_u^m on users, 0 on items
            item_side = propagate_block(user_side, blocks[-1])  # f_i^m on items, 0 on users
            modal[m] = user_side[:num_seeds] + item_side
        nid = batch.input_nid(self.num_layers)
        ego_all = self.embedding(nid)
        h0 = ego_all
        prompt = None
        if self.prompt is not None:
            p_nodes = self._node_prompts(nid, p_all)
            h0 = ego_all + self.a_sp * F.normalize(p_nodes, dim=1)
            prompt = p_nodes[:num_seeds]
        id_out = mean_of_layers_sampled(h0, batch.layers(self.num_layers), num_seeds)
        emb = id_out + self.a_mc * sum(F.normalize(f, dim=1) for f in modal.values())
        return TeacherOutput(emb, ego_all[:num_seeds], modal, prompt)

    def full(self, adj: SparseAdj) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Full-graph layer-wise inference: ((N, d) e^T, m -> (N, d) f^m) for all N = U + I nodes."""
        p_all, summary = None, None
        if self.prompt is not None:
            p_all = self.prompt.items()
            summary = self._summary(p_all) if self.training else None  # eval: the factored form
        out = self._outputs(adj, p_all, summary)
        return out.emb, out.modal

    def _outputs(self, adj: SparseAdj, p_all: torch.Tensor | None, summary: dict[str, torch.Tensor] | None
                 ) -> TeacherOutput:
        """The equations over whole tables: outputs at all N = U + I nodes (full propagation, in
        training and inference). The modality GNN runs on the user-item blocks of ``adj``: f_u^m =
        A_ui h^m, f_i^m = A_iu f_u^m."""
        a_ui, a_iu = adj.bipartite(self.num_users)
        prompt = None
        if self.prompt is not None:
            p_items = p_all if p_all is not None else self.prompt.items()
            prompt = torch.cat([self.prompt.users(), p_items])  # (N, d)
        modal = {}
        for m in self.modalities:
            f_u = a_ui @ self._reduced(m, None, p_items if prompt is not None else None, summary)  # (U, d)
            modal[m] = torch.cat([f_u, a_iu @ f_u])
        ego = self.embedding.weight
        h0 = ego if prompt is None else ego + self.a_sp * F.normalize(prompt, dim=1)
        emb = mean_of_layers_full(h0, adj, self.num_layers)
        emb = emb + self.a_mc * sum(F.normalize(f, dim=1) for f in modal.values())
        return TeacherOutput(emb, ego, modal, prompt)

    @torch.no_grad()
    def full_embeddings(self, adj: SparseAdj) -> tuple[torch.Tensor, torch.Tensor]:
        """((U, d) users, (I, d) items) teacher embeddings, for ranking."""
        emb, _ = self.full(adj)
        return emb[: self.num_users], emb[self.num_users:]
