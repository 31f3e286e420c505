"""Deterministic synthetic multimodal interaction data (the project's embedded default).

Generative story, for a seed:

- users and items get latent factors ``p_u, q_i ~ N(0, I_f / sqrt(f))`` (so ``<p_u, q_i>`` has unit variance);
- item popularity follows a power law, ``pop_i ∝ (rank_i + 1)^-alpha`` over a random permutation;
- user ``u`` draws ``n_u`` (log-normal around the mean activity, at least 3) distinct items: a
  candidate pool is drawn from popularity, and candidates are kept by Gumbel-top-``n_u`` of
  ``affinity * <p_u, q_i>``, so interactions depend on both popularity and the factors;
- each user's items get increasing timestamps; the latest ``test_fraction`` go to test, the ones
  before to val, the rest to train (at least one train item per user);
- modality ``m`` is a noisy, different projection of the item factors:
  ``X^m = tanh(Q W_m) + noise * eps`` with ``W_m`` random ``f x d_m`` — the features carry real
  signal about which items a user likes, so a multimodal teacher can exploit them;
- ``sequential: true``: histories are drawn step by step instead; at step t user u picks, among a
  popularity-drawn candidate pool not yet consumed, the Gumbel-argmax of
  ``affinity * <p_u, q_j> + transition * <q_prev M, q_j>`` (``q_prev``: the item consumed at t-1,
  ``M`` a random rotation of factor space), so the next item depends on the last one and on taste;
  the order of consumption is the time order;
- ``split: loo``: each user's last item is test, the second-last val (users have >= 3 items);
  ``split: fraction``: the latest ``test_fraction`` go to test, the ``val_fraction`` before to val;
- item categories (the semantic labels SGFD learns from), when ``num_categories > 0``: the nearest of
  ``num_categories`` random unit directions in factor space, ``argmax_c <q_i, c>``, so items of a
  category share taste-relevant factors (written as ``items/``, column ``category``);
- item texts, when ``text_words > 0``: that many distinct words from a small vocabulary, drawn with
  logits ``10 <q_i / |q_i|, c_w>`` for random word directions ``c_w`` (column ``text``), so items
  with similar factors share words (:func:`item_texts`).

Shards are produced one block of users at a time, so tens of millions of interactions never sit in
memory at once (only the id keys for the duplicate check do).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa

from raymm.config import SyntheticConfig
from raymm.data.schema import Manifest
from raymm.data.store import write_dataset

_POOL = 8  # candidates drawn per kept interaction


def _factors(cfg: SyntheticConfig) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(cfg.seed)
    f = cfg.latent_dim
    scale = f ** -0.25  # <p_u, q_i> then has unit variance
    user_f = rng.normal(0, scale, (cfg.num_users, f)).astype(np.float32)
    item_f = rng.normal(0, scale, (cfg.num_items, f)).astype(np.float32)
    ranks = rng.permutation(cfg.num_items)
    pop = (ranks + 1.0) ** -cfg.popularity_exponent
    cdf = np.cumsum(pop / pop.sum())
    return rng, user_f, item_f, cdf


def modality_features(cfg: SyntheticConfig, item_f: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for n, (name, dim) in enumerate(sorted(cfg.modalities.items())):
        rng = np.random.default_rng([cfg.seed, 1000 + n])
        w = rng.normal(0, cfg.latent_dim ** -0.25, (cfg.latent_dim, dim)).astype(np.float32)
        x = np.tanh(item_f @ w) + cfg.feature_noise * rng.normal(0, 1, (len(item_f), dim)).astype(np.float32)
        out[name] = x.astype(np.float32)
    return out


def categories(cfg: SyntheticConfig, item_f: np.ndarray) -> np.ndarray:
    """(I,) int64 category of each item (see module docstring)."""
    rng = np.random.default_rng([cfg.seed, 2000])
    directions = rng.normal(0, 1, (cfg.latent_dim, cfg.num_categories)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    return np.argmax(item_f @ directions, axis=1).astype(np.int64)


# Item-text vocabulary: everyday product words. Each word gets a random direction in factor space.
WORDS = ("soft warm bright dark light heavy small large classic modern simple bold quiet loud smooth rough "
         "sweet sharp fresh vintage cozy sleek rustic playful elegant sporty minimal colorful natural urban "
         "wooden metal cotton leather glass paper plastic wool silk stone lamp chair book song dance "
         "video game guitar piano camera phone shoe jacket bag watch toy garden kitchen travel "
         "beach city mountain forest river ocean night morning summer winter").split()


def item_texts(cfg: SyntheticConfig, item_f: np.ndarray) -> np.ndarray:
    """(I,) item texts of ``cfg.text_words`` distinct words each: word w is drawn (Gumbel-top-k) with
    logit ``10 <q_i / |q_i|, c_w>`` for a random unit direction ``c_w``, so items with similar
    factors share words and the text carries taste signal a text encoder can pick up."""
    rng = np.random.default_rng([cfg.seed, 3000])
    directions = rng.normal(0, 1, (cfg.latent_dim, len(WORDS)))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    unit = item_f / np.maximum(np.linalg.norm(item_f, axis=1, keepdims=True), 1e-12)
    logits = 10.0 * unit @ directions + rng.gumbel(size=(len(item_f), len(WORDS)))
    top = np.argsort(-logits, axis=1)[:, :min(cfg.text_words, len(WORDS))]
    vocab = np.array(WORDS)
    return np.array([" ".join(vocab[row]) for row in top], dtype=object)


def _activity(rng: np.random.Generator, cfg: SyntheticConfig, n_users: int) -> np.ndarray:
    mean = cfg.num_interactions / cfg.num_users
    raw = rng.lognormal(0.0, 0.7, n_users)
    n = np.maximum(3, np.round(raw / raw.mean() * mean)).astype(np.int64) if n_users else raw.astype(np.int64)
    return np.minimum(n, max(3, cfg.num_items // 2))


def interaction_shards(cfg: SyntheticConfig) -> Iterator[pa.Table]:
    """Yield interaction tables, about ``cfg.shard_rows`` rows each."""
    rng, user_f, item_f, cdf = _factors(cfg)
    counts = _activity(rng, cfg, cfg.num_users)
    start = 0
    while start < cfg.num_users:
        stop = start
        rows = 0
        while stop < cfg.num_users and (rows == 0 or rows + counts[stop] <= cfg.shard_rows):
            rows += counts[stop]
            stop += 1
        make = _sequential_shard if cfg.sequential else _shard
        yield make(np.random.default_rng([cfg.seed, start]), cfg, np.arange(start, stop), counts[start:stop],
                   user_f, item_f, cdf)
        start = stop


def _transition(cfg: SyntheticConfig) -> np.ndarray:
    """(f, f) random rotation M of factor space (the item-to-item transition)."""
    q, _ = np.linalg.qr(np.random.default_rng([cfg.seed, 3000]).normal(size=(cfg.latent_dim, cfg.latent_dim)))
    return q.astype(np.float32)


def _sequential_shard(rng, cfg, users, counts, user_f, item_f, cdf) -> pa.Table:
    """Histories drawn step by step (module docstring), for blocks of users that advance together
    (a block's (users x items) state stays under about 20M entries)."""
    m = _transition(cfg)
    block = max(1, 20_000_000 // cfg.num_items)
    parts = [_sequences(rng, cfg, users[s:s + block], counts[s:s + block], user_f, item_f, cdf, m)
             for s in range(0, len(users), block)]
    u, i, pos = (np.concatenate(x) for x in zip(*parts))
    return _with_splits(cfg, users, u, i, pos)


def _sequences(rng, cfg, users, counts, user_f, item_f, cdf, m):
    """(user, item, position) of the histories of ``users``, sorted by user then position."""
    n_users, steps = len(users), int(counts.max())
    seen = np.zeros((n_users, cfg.num_items), dtype=bool)
    taste = cfg.affinity * user_f[users] @ item_f.T  # (B, I)
    prev = None
    out_u, out_i, out_t = [], [], []
    for t in range(steps):
        active = np.flatnonzero(counts > t)
        cand = np.minimum(np.searchsorted(cdf, rng.random((len(active), _POOL * 4))), cfg.num_items - 1)
        score = taste[active[:, None], cand] + rng.gumbel(size=cand.shape)
        if prev is not None:
            score += cfg.transition * np.einsum("bf,bpf->bp", item_f[prev[active]] @ m, item_f[cand])
        score[seen[active[:, None], cand]] = -np.inf
        pick = cand[np.arange(len(active)), np.argmax(score, axis=1)]
        stuck = np.isinf(score.max(axis=1))  # every candidate consumed: any unseen item instead
        for row in np.flatnonzero(stuck):
            pick[row] = rng.choice(np.flatnonzero(~seen[active[row]]))
        seen[active, pick] = True
        nxt = np.zeros(n_users, np.int64) if prev is None else prev.copy()
        nxt[active] = pick
        prev = nxt
        out_u.append(users[active])
        out_i.append(pick)
        out_t.append(np.full(len(active), t))
    u, i, pos = np.concatenate(out_u), np.concatenate(out_i), np.concatenate(out_t)
    order = np.lexsort((pos, u))
    return u[order], i[order], pos[order]


def _shard(rng, cfg, users, counts, user_f, item_f, cdf) -> pa.Table:
    pool = counts * _POOL
    cand_user = np.repeat(users, pool)
    cand_item = np.minimum(np.searchsorted(cdf, rng.random(len(cand_user))), cfg.num_items - 1)
    score = cfg.affinity * np.einsum("nf,nf->n", user_f[cand_user], item_f[cand_item]) + rng.gumbel(size=len(cand_user))
    # Best candidates first within each user; then drop repeated (user, item) pairs.
    order = np.lexsort((-score, cand_user))
    cand_user, cand_item = cand_user[order], cand_item[order]
    key = cand_user * cfg.num_items + cand_item
    _, first = np.unique(key, return_index=True)
    keep = np.sort(first)
    cand_user, cand_item = cand_user[keep], cand_item[keep]
    # Rank within user (candidates stay in score order after the stable de-duplication).
    starts = np.searchsorted(cand_user, users)
    rank = np.arange(len(cand_user)) - np.repeat(starts, np.diff(np.append(starts, len(cand_user))))
    want = np.repeat(counts, np.diff(np.append(starts, len(cand_user))))
    sel = rank < want
    u, i = cand_user[sel], cand_item[sel]
    # Random order of consumption within each user -> position -> timestamp; latest go to test, then val.
    per_user = np.bincount(u - users[0], minlength=len(users))
    order = np.lexsort((rng.random(len(u)), u))
    pos = np.empty(len(u), np.int64)
    pos[order] = np.arange(len(u)) - np.repeat(np.searchsorted(u, users), per_user)
    return _with_splits(cfg, users, u, i, pos)


def _with_splits(cfg, users, u, i, pos) -> pa.Table:
    """The shard's table: split by position in each user's timeline, timestamp from the position."""
    per_user = np.bincount(u - users[0], minlength=len(users))
    n_u = per_user[u - users[0]]
    if cfg.split == "loo":
        n_test = n_val = np.ones_like(n_u)
    else:
        n_test = np.floor(n_u * cfg.test_fraction).astype(np.int64)
        n_val = np.floor(n_u * cfg.val_fraction).astype(np.int64)
        n_test = np.where(n_u - n_test - n_val < 1, 0, n_test)
    split = np.full(len(u), "train", dtype=object)
    split[pos >= n_u - n_test - n_val] = "val"
    split[pos >= n_u - n_test] = "test"
    timestamp = 1_600_000_000 + pos * 3600
    return pa.table({"user_id": u.astype(np.int64), "item_id": i.astype(np.int64),
                     "split": pa.array(split.tolist(), pa.string()), "timestamp": timestamp.astype(np.int64)})


def generate(cfg: SyntheticConfig, dest: str, overwrite: bool = False) -> Manifest:
    """Generate the dataset described by ``cfg`` into ``dest`` (canonical layout)."""
    _, _, item_f, _ = _factors(cfg)
    columns = {}
    if cfg.num_categories:
        columns["category"] = categories(cfg, item_f)
    if cfg.text_words:
        columns["text"] = pa.array(item_texts(cfg, item_f).tolist(), pa.string())
    items = pa.table({"item_id": np.arange(cfg.num_items, dtype=np.int64), **columns}) if columns else None
    return write_dataset(dest, interaction_shards(cfg), modality_features(cfg, item_f), cfg.num_users,
                         cfg.num_items, source=f"synthetic(seed={cfg.seed})", overwrite=overwrite, items=items,
                         split_protocol="loo" if cfg.split == "loo" else "latest-fraction")
