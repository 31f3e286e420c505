import numpy as np

from raymm.config import SyntheticConfig
from raymm.data.store import load_dataset
from raymm.data.synthetic import generate, interaction_shards


def _cfg(**kw):
    base = dict(num_users=300, num_items=200, num_interactions=6000, modalities={"a": 8, "b": 12})
    base.update(kw)
    return SyntheticConfig(**base)


def test_deterministic_for_a_seed():
    t1 = [t.to_pydict() for t in interaction_shards(_cfg())]
    t2 = [t.to_pydict() for t in interaction_shards(_cfg())]
    t3 = [t.to_pydict() for t in interaction_shards(_cfg(seed=1))]
    assert t1 == t2 and t1 != t3


def test_written_shard_by_shard_and_valid(tmp_path):
    m = generate(_cfg(shard_rows=1000), str(tmp_path / "syn"))
    assert len(m.interaction_files) > 3
    total = sum(m.split_counts.values())
    assert 0.8 * 6000 < total < 1.2 * 6000
    ds = load_dataset(str(tmp_path / "syn"))
    splits = ds.read_interactions()  # validates: no duplicates, eval users known to train
    assert len(splits["val"][0]) > 0 and len(splits["test"][0]) > 0


def test_popularity_is_skewed_and_features_carry_signal(tmp_path):
    generate(_cfg(num_interactions=15000, feature_noise=0.3), str(tmp_path / "syn"))
    ds = load_dataset(str(tmp_path / "syn"))
    users, items = ds.read_interactions()["train"]
    counts = np.sort(np.bincount(items, minlength=ds.num_items))[::-1]
    assert counts[:20].sum() > 3 * counts[-20:].sum()  # power-law-ish popularity
    x = ds.read_features("a")
    x = x - x.mean(0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    # items consumed by the same user are more similar in feature space than random item pairs
    rng = np.random.default_rng(0)
    order = np.argsort(users, kind="stable")
    u, i = users[order], items[order]
    same = u[1:] == u[:-1]
    co = np.einsum("nd,nd->n", x[i[1:][same]], x[i[:-1][same]]).mean()
    a, b = rng.integers(0, ds.num_items, (2, 20000))
    a, b = a[a != b], b[a != b]
    rand = np.einsum("nd,nd->n", x[a], x[b]).mean()
    assert abs(rand) < 0.01 and co > 0.02, (co, rand)


def test_categories_follow_the_latent_item_factors(tmp_path):
    from raymm.data.synthetic import _factors, categories

    cfg = _cfg(num_categories=5)
    generate(cfg, str(tmp_path / "syn"))
    items = load_dataset(str(tmp_path / "syn")).read_items()
    _, _, item_f, _ = _factors(cfg)
    assert np.array_equal(items["item_id"], np.arange(200)) and np.array_equal(items["category"], categories(cfg, item_f))
    assert len(set(items["category"].tolist())) == 5
    # items of one category point the same way in factor space; items of different ones do not
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 200, 4000), rng.integers(0, 200, 4000)
    same = items["category"][a] == items["category"][b]
    unit = item_f / np.linalg.norm(item_f, axis=1, keepdims=True)
    cos = (unit[a] * unit[b]).sum(1)
    assert cos[same & (a != b)].mean() > cos[~same].mean() + 0.08


def test_no_item_table_without_categories(tmp_path):
    m = generate(_cfg(num_categories=0), str(tmp_path / "syn"))
    assert m.item_files == [] and load_dataset(str(tmp_path / "syn")).read_items() == {}


def test_sequential_mode_follows_transitions_and_splits_leave_one_out(tmp_path):
    from raymm.data.splits import time_order
    from raymm.data.synthetic import _factors, _transition

    cfg = _cfg(sequential=True, split="loo", transition=4.0, affinity=0.5, shard_rows=2500)
    m = generate(cfg, str(tmp_path / "seq"))
    assert m.split_protocol == "loo" and m.split_counts["val"] == m.split_counts["test"] == 300
    ds = load_dataset(str(tmp_path / "seq"))
    import pandas as pd
    frame = pd.concat([pd.read_parquet(p) for p in ds.interaction_paths()], ignore_index=True)
    frame = frame.iloc[time_order(frame["user_id"].to_numpy(), frame["timestamp"].to_numpy())]
    assert (frame.groupby("user_id")["split"].agg(list).map(lambda s: s[-2:] == ["val", "test"])).all()
    # consecutive items follow the transition: <q_prev M, q_next> is well above that of random pairs
    _, _, q, _ = _factors(cfg)
    t = _transition(cfg)
    same = frame["user_id"].to_numpy()[1:] == frame["user_id"].to_numpy()[:-1]
    items = frame["item_id"].to_numpy()
    follow = np.einsum("nf,nf->n", q[items[:-1][same]] @ t, q[items[1:][same]]).mean()
    rand = np.einsum("nf,nf->n", q[items[:-1][same]] @ t, q[np.random.default_rng(0).permutation(items[1:][same])]).mean()
    assert follow > rand + 0.3


def test_loo_split_refuses_fraction_options():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="apply to split: fraction"):
        _cfg(split="loo", val_fraction=0.2)


def test_item_texts_follow_the_latent_item_factors(tmp_path):
    from raymm.data.synthetic import WORDS, _factors

    cfg = _cfg(num_categories=0, text_words=6)
    generate(cfg, str(tmp_path / "syn"))
    texts = load_dataset(str(tmp_path / "syn")).read_items()["text"]
    words = [set(t.split()) for t in texts]
    assert len(texts) == 200 and all(len(w) == 6 and w <= set(WORDS) for w in words)
    # items close in factor space share more words than random pairs
    _, _, item_f, _ = _factors(cfg)
    unit = item_f / np.linalg.norm(item_f, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -2)
    nearest = cos.argmax(1)
    rng = np.random.default_rng(0)
    shared_near = np.mean([len(words[i] & words[j]) for i, j in enumerate(nearest)])
    shared_random = np.mean([len(words[i] & words[j]) for i, j in enumerate(rng.permutation(200))])
    assert shared_near > 2 * shared_random
