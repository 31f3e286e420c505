import numpy as np
import pytest
import torch

from raymm.data.schema import DataValidationError
from raymm.sequences import SequenceData, next_item_sums


def _seq():
    # user 0: items 5, 3, 9, 1 (times 1..4; last val/test), user 1: 2, 7, 4; user 2: none
    users = np.array([0, 1, 0, 0, 1, 0, 1])
    items = np.array([3, 7, 5, 9, 2, 1, 4])
    ts = np.array([2, 2, 1, 3, 1, 4, 3])
    splits = np.array([0, 0, 0, 1, 0, 2, 1], dtype=np.int8)
    return SequenceData.from_arrays(users, items, splits, ts, num_users=3, num_items=10)


def test_timelines_windows_and_targets_never_in_their_own_window():
    seq = _seq()
    assert seq.indptr.tolist() == [0, 4, 7, 7]
    assert seq.items.tolist() == [5, 3, 9, 1, 2, 7, 4]
    pos = seq.positions(np.array([0, 0, 1]), np.array([9, 3, 7]))
    assert pos.tolist() == [2, 1, 5]
    win = seq.windows(pos, 3)  # shifted by one, left-padded with 0
    assert win.tolist() == [[0, 6, 4], [0, 0, 6], [0, 0, 3]]
    for p, w in zip(pos, win):
        assert seq.items[p] + 1 not in w  # the target never leaks into its own history
    assert seq.trainable(np.array([0, 1, 4])).tolist() == [False, True, False]
    assert seq.examples("val").tolist() == [2, 6] and seq.examples("test").tolist() == [3]


def test_window_is_truncated_to_the_most_recent_items():
    seq = _seq()
    assert seq.windows(np.array([3]), 2).tolist() == [[4, 10]]  # items 3, 9 (shifted): the last two before 1


def test_segments_tile_each_training_timeline_and_predict_only_from_the_past():
    # user 0: 8 training items then val, test; user 1: 3 training items; user 2: 1 training item
    users = np.r_[np.zeros(10, int), np.ones(3, int), 2]
    items = np.r_[np.arange(10), 10, 11, 12, 13]
    splits = np.r_[np.zeros(8), 1, 2, 0, 0, 0, 0].astype(np.int8)
    seq = SequenceData.from_arrays(users, items, splits, np.r_[np.arange(10), np.arange(3), 0], 3, 14)
    assert seq.train_end.tolist() == [7, 12, 13]
    train = seq.examples("train")
    anchors = train[seq.anchors(train, 3)]
    assert anchors.tolist() == [1, 4, 7, 12]  # 7, 4, 1 for user 0 (0 is a first item), 12 for user 1
    inputs, targets = seq.segments(anchors, 3)
    assert inputs.tolist() == [[0, 0, 1], [2, 3, 4], [5, 6, 7], [0, 11, 12]]  # shifted ids
    assert targets.tolist() == [[-1, -1, 1], [2, 3, 4], [5, 6, 7], [-1, 11, 12]]
    # each training interaction but a user's first is a target exactly once per epoch
    got = sorted(t for t in targets.ravel().tolist() if t >= 0)
    assert got == sorted(seq.items[train][seq.trainable(train)].tolist())
    for x, y in zip(inputs, targets):  # target k follows input k: never in its own history
        for k in np.flatnonzero(y >= 0):
            assert x[k] != 0 and y[k] + 1 not in x[:k + 1]
            if k + 1 < len(x):
                assert y[k] + 1 == x[k + 1]  # and it is the next input


def test_split_out_of_time_order_is_refused():
    with pytest.raises(DataValidationError, match="user 0 has a train interaction after a val one"):
        SequenceData.from_arrays(np.array([0, 0]), np.array([1, 2]), np.array([1, 0], np.int8), np.array([1, 2]), 1, 3)


def test_next_item_metrics_by_hand_and_history_mask():
    seq = _seq()
    # score = fixed preference order 9 > 2 > 4 > 1 > ... whatever the window
    pref = torch.tensor([0.0, 5, 8, 0, 7, 0, 0, 0, 0, 9])
    fn = lambda w: pref.expand(len(w), -1)
    ex = seq.examples("val")  # targets: user 0 -> 9 (rank 1), user 1 -> 4 (rank 3: after 9 and 2)
    s = next_item_sums(fn, seq, ex, 3, [1, 3], mask_history=False, device="cpu")
    names = [f"{m}@{k}" for m in ("recall", "ndcg", "precision", "hit", "mrr") for k in (1, 3)]
    got = dict(zip(names, (s[:-1] / s[-1]).tolist()))
    assert got["hit@1"] == pytest.approx(0.5) and got["hit@3"] == pytest.approx(1.0)
    assert got["mrr@3"] == pytest.approx((1 + 1 / 3) / 2)
    assert got["ndcg@3"] == pytest.approx((1 + 1 / np.log2(4)) / 2)
    # with the history masked, user 1's earlier item 2 cannot be ranked: 4 moves to rank 2
    s = next_item_sums(fn, seq, ex, 3, [1, 3], mask_history=True, device="cpu")
    got = dict(zip(names, (s[:-1] / s[-1]).tolist()))
    assert got["mrr@3"] == pytest.approx((1 + 1 / 2) / 2)
