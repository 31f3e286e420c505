import numpy as np
import pytest

from raymm.config import SyntheticConfig
from raymm.data.holdout import cold_item_ids, cold_pairs, hold_out_items
from raymm.data.store import load_dataset
from raymm.data.synthetic import generate
from raymm.errors import InputError


def _pairs(ds) -> dict[str, set]:
    return {s: set(zip(u.tolist(), i.tolist())) for s, (u, i) in ds.read_interactions().items()}


def test_held_out_items_leave_every_split_and_stay_in_the_catalogue(tmp_path):
    cfg = SyntheticConfig(num_users=200, num_items=100, num_interactions=3000, text_words=4, shard_rows=1000)
    generate(cfg, str(tmp_path / "src"))
    src = load_dataset(str(tmp_path / "src"))
    cold = cold_item_ids(src.num_items, 0.2, seed=0)
    assert len(cold) == 20 and np.all(np.diff(cold) > 0)
    assert np.array_equal(cold, cold_item_ids(src.num_items, 0.2, seed=0))  # one draw per seed

    hold_out_items(src, str(tmp_path / "warm"), cold)
    warm = load_dataset(str(tmp_path / "warm"))
    before, after = _pairs(src), _pairs(warm)
    train_users = {u for u, _ in after["train"]}
    for split, pairs in before.items():
        kept = {(u, i) for u, i in pairs if i not in set(cold.tolist())}
        if split != "train":  # eval rows of users left without training rows go
            kept = {(u, i) for u, i in kept if u in train_users}
        assert after[split] == kept, split
    assert warm.num_items == src.num_items and warm.num_users == src.num_users
    assert list(warm.read_items()["text"]) == list(src.read_items()["text"])  # cold items keep their text
    assert np.array_equal(warm.read_features("image"), src.read_features("image"))
    assert "items held out" in warm.manifest.source

    users, items = cold_pairs(src, cold)
    expect = {(u, i) for s in ("train", "val") for u, i in before[s] if i in set(cold.tolist())}
    assert set(zip(users.tolist(), items.tolist())) == expect and len(expect) > 0  # test rows stay unused


def test_bad_fraction_is_refused():
    with pytest.raises(InputError, match="fraction"):
        cold_item_ids(100, 0.0, 0)
    with pytest.raises(InputError, match="no item"):
        cold_item_ids(3, 0.1, 0)
