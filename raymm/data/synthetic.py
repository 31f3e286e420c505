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
- item categories (the semantic labels SGFD learns from), when ``num_categories > 0``: the nearest of
  ``num_categories`` random unit directions in factor space, ``argmax_c <q_i, c>``, so items of a
  category share taste-relevant factors (written as ``items/``, column ``category``).

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
        yield _shard(np.random.default_rng([cfg.seed, start]), cfg, np.arange(start, stop), counts[start:stop],
                     user_f, item_f, cdf)
        start = stop


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
    n_u = per_user[u - users[0]]
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
    items = None
    if cfg.num_categories:
        items = pa.table({"item_id": np.arange(cfg.num_items, dtype=np.int64), "category": categories(cfg, item_f)})
    return write_dataset(dest, interaction_shards(cfg), modality_features(cfg, item_f), cfg.num_users,
                         cfg.num_items, source=f"synthetic(seed={cfg.seed})", overwrite=overwrite, items=items)
