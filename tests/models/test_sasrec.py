import torch

from raymm.methods.sequential import next_item_loss
from raymm.models.registry import from_payload, to_payload
from raymm.models.sasrec import SASRec, causal_mask


def test_no_position_sees_the_future():
    torch.manual_seed(0)
    model = SASRec(num_items=20, dim=8, max_len=6, num_blocks=2, num_heads=2, dropout=0.0).eval()
    w = torch.tensor([[0, 3, 5, 7, 9, 11]])
    h = model.encode(model.embed(w), w)
    w2 = w.clone()
    w2[0, 4:] = torch.tensor([2, 4])  # change the last two items
    h2 = model.encode(model.embed(w2), w2)
    assert torch.allclose(h[0, :4], h2[0, :4], atol=1e-6)  # earlier positions unchanged
    assert not torch.allclose(h[0, 4:], h2[0, 4:])


def test_all_positions_training_states_match_the_served_last_state():
    torch.manual_seed(0)
    model = SASRec(num_items=20, dim=8, max_len=6, num_blocks=2, num_heads=2, dropout=0.0).eval()
    w = torch.tensor([[0, 3, 5, 7, 9, 11], [0, 0, 0, 0, 2, 4]])
    every = model(w, all_positions=True)  # (B, L, d)
    assert every.shape == (2, 6, 8)
    assert torch.allclose(every[:, -1], model(w), atol=1e-6)


def test_padding_is_invisible_and_never_nan():
    torch.manual_seed(0)
    model = SASRec(num_items=20, dim=8, max_len=5, dropout=0.0).eval()
    short = torch.tensor([[0, 0, 0, 4, 6]])
    other_pad = torch.tensor([[0, 0, 0, 4, 6]])
    model.encoder.pos_emb.weight.data[:3] += 5.0  # positions of the padding only
    assert torch.allclose(model(short), model(other_pad))
    assert torch.isfinite(model.encode(model.embed(short), short)).all()
    m = causal_mask(short, 1)
    assert m.shape == (1, 5, 5) and not m.all(-1).any()  # no row fully blocked


def test_full_and_sampled_softmax_and_payload_round_trip():
    torch.manual_seed(0)
    model = SASRec(num_items=30, dim=8, max_len=4, dropout=0.0)
    w = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    state = model(w)
    targets = torch.tensor([3, 8])
    full = next_item_loss(state, model.item_rows, 30, targets)
    assert torch.allclose(full, torch.nn.functional.cross_entropy(model.score(w), targets))
    g = torch.Generator().manual_seed(0)
    sampled = next_item_loss(state, model.item_rows, 30, targets, negatives=10, generator=g)
    assert torch.isfinite(sampled) and sampled < full  # 11 candidates instead of 30
    again = from_payload(to_payload(model))
    assert torch.allclose(again.eval().score(w), model.eval().score(w))


def test_graph_evaluation_refuses_a_sequential_model_clearly(tmp_path):
    import numpy as np
    import pytest

    from raymm.errors import ModelMismatchError
    from raymm.graph import TrainGraph
    from raymm.model_io import ranking_tables

    path = tmp_path / "sasrec.pt"
    torch.save(to_payload(SASRec(num_items=5, dim=4, max_len=3)), path)
    graph = TrainGraph.from_interactions(np.array([0]), np.array([1]), 1, 5)
    with pytest.raises(ModelMismatchError, match="is a sequential model"):
        ranking_tables(str(path), graph)


def test_served_sequential_recommender_ranks_from_the_history():
    import numpy as np
    import pandas as pd
    import pytest

    from raymm.serving import SequentialRecommenderModel

    torch.manual_seed(0)
    served = SequentialRecommenderModel()
    served.model, served.default_k = SASRec(num_items=12, dim=8, max_len=3, dropout=0.0).eval(), 4
    out = served.predict(None, pd.DataFrame({"history": [[1, 2, 3, 4], []]}))
    assert out["user_id"].tolist() == [0] * 4 + [1] * 4 and not set(out["item_id"][:4]) & {1, 2, 3, 4}
    # the last max_len items are the window: the same scores as the model's on that window
    expect = served.model.score(torch.tensor([[3, 4, 5]]))[0]
    expect[[1, 2, 3, 4]] = -torch.inf
    assert out["item_id"][:4].tolist() == torch.topk(expect, 4).indices.tolist()
    with pytest.raises(ValueError, match=r"history of row 0: item ids out of range \[0, 12\): \[12\]"):
        served.recommend([np.array([12])])


def test_state_from_the_last_position_only_equals_the_full_encoding():
    """forward() computes only the last position's query and FFN in the last block: same state as
    encoding every position and taking the last."""
    import torch

    from raymm.models.sasrec import SASRec

    torch.manual_seed(0)
    model = SASRec(num_items=40, dim=16, max_len=7, num_blocks=2, num_heads=2).eval()
    windows = torch.tensor([[0, 0, 3, 7, 9, 2, 5], [1, 2, 3, 4, 5, 6, 7], [0, 0, 0, 0, 0, 0, 4]])
    full = model.encode(model.embed(windows), windows)[:, -1]
    assert torch.allclose(model(windows), full, atol=1e-6)
