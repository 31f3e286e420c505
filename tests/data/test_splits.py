import numpy as np
import pytest

from raymm.data.splits import assign_splits, parse_protocol, time_order


def test_time_order_breaks_ties_by_row_order():
    users = np.array([1, 0, 1, 1, 0])
    ts = np.array([5, 9, 5, 1, 9])
    assert time_order(users, ts).tolist() == [1, 4, 3, 0, 2]


def test_leave_one_out_last_is_test_second_last_val_short_users_dropped():
    # user 0: 6 interactions (shuffled rows), user 1: 4 (< 5, dropped)
    users = np.array([0, 0, 1, 0, 0, 1, 0, 1, 0, 1])
    ts = np.array([6, 1, 1, 3, 5, 2, 2, 3, 4, 4])
    keep, split = assign_splits(users, ts, "loo", min_len=5)
    assert keep.tolist() == [u == 0 for u in users]
    by_time = {int(t): s for u, t, s in zip(users, ts, split) if u == 0}
    assert [by_time[t] for t in range(1, 7)] == ["train"] * 4 + ["val", "test"]


def test_ratio_split_takes_the_last_fraction_of_each_timeline():
    users = np.repeat([0, 1], [10, 5])
    ts = np.r_[np.arange(10), np.arange(5)]
    keep, split = assign_splits(users, ts, "ratio:0.2", min_len=5)
    assert keep.all()
    assert split[:10].tolist() == ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    assert split[10:].tolist() == ["train"] * 3 + ["val", "test"]


def test_ratio_split_keeps_a_training_item():
    keep, split = assign_splits(np.zeros(3, np.int64), np.arange(3), "ratio:0.45", min_len=3)
    assert split.tolist() == ["train", "val", "test"]


@pytest.mark.parametrize("bad", ["ratio", "ratio:0.7", "ratio:x", "random", "ratio:0"])
def test_bad_protocols_are_refused(bad):
    with pytest.raises(ValueError, match="loo"):
        parse_protocol(bad)
