import math

import numpy as np
import pytest
import torch
from torch import nn

from raymm.methods.ptmrec.cache import ItemTextCache
from raymm.methods.ptmrec.losses import cosine_logits, similarity_kl


def test_similarity_kl_by_hand():
    t = torch.tensor([[0.0, 1.0, -math.inf], [2.0, 0.0, 0.0]])
    s = torch.tensor([[1.0, 0.0, -math.inf], [0.0, 0.0, 0.0]])
    tau = 0.5
    p0, q0 = np.array([1, math.e ** 2]) / (1 + math.e ** 2), np.array([math.e ** 2, 1]) / (1 + math.e ** 2)
    p1 = np.array([math.e ** 4, 1, 1]) / (math.e ** 4 + 2)
    q1 = np.full(3, 1 / 3)
    expect = (np.sum(p0 * np.log(p0 / q0)) + np.sum(p1 * np.log(p1 / q1))) / 2
    assert similarity_kl(t, s, tau).item() == pytest.approx(expect, rel=1e-5)
    assert similarity_kl(t, t, tau).item() == pytest.approx(0.0, abs=1e-7)
    s.requires_grad_(True)
    tt = t.clone().requires_grad_(True)
    similarity_kl(tt, s, tau).backward()
    assert tt.grad is None and torch.isfinite(s.grad).all()  # the stage-1 side is fixed


def test_cosine_logits_leave_an_item_out_of_its_own_distribution():
    x = torch.tensor([[1.0, 0.0], [3.0, 4.0], [0.0, 2.0]])
    sim = cosine_logits(x, x, exclude_diagonal=True)
    assert torch.isinf(sim.diagonal()).all()
    assert sim[0, 1].item() == pytest.approx(0.6) and sim[1, 2].item() == pytest.approx(0.8)


class _Toy(nn.Module):
    """An 'encoder' whose output is the mean token id times a learned scale."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, ids, mask):
        return (ids.float() * mask).mean(1, keepdim=True).repeat(1, 2) * self.scale


def test_cache_encodes_the_batch_fresh_and_refreshes_the_rest_every_n_steps():
    tokens = {"input_ids": np.arange(12).reshape(6, 2), "attention_mask": np.ones((6, 2), np.int64)}
    enc = _Toy()
    cache = ItemTextCache(tokens, every=2, chunk=4)
    table = cache.table(enc, torch.tensor([1, 4]))
    assert cache.refreshes == 1 and table.shape == (6, 2)
    table.sum().backward()
    assert enc.scale.grad.item() == pytest.approx(2 * (2.5 + 8.5))  # only the batch's rows carry gradients
    with torch.no_grad():
        enc.scale.fill_(2.0)
    cache.step(enc)  # step 1 of 2: no refresh
    table = cache.table(enc, torch.tensor([0]))
    assert table[0, 0].item() == pytest.approx(1.0)  # fresh: 0.5 x 2
    assert table[1, 0].item() == pytest.approx(2.5) and table[2, 0].item() == pytest.approx(4.5)  # stale
    cache.step(enc)  # step 2 of 2: everything re-encoded
    assert cache.refreshes == 2
    assert torch.allclose(cache.cache[:, 0], torch.tensor([1.0, 5.0, 9.0, 13.0, 17.0, 21.0]))


class _MaskedMean(nn.Module):
    """Mean of the real tokens' ids, and the width it was called with (padding must not matter)."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # the cache reads the device from a parameter
        self.widths = []

    def forward(self, ids, mask):
        self.widths.append(ids.shape[1])
        return torch.stack([(ids * mask).sum(1) / mask.sum(1), mask.sum(1).float()], 1)


def test_cache_encodes_in_length_sorted_chunks_and_returns_the_rows_in_their_order():
    lengths = [5, 1, 3, 2, 5, 1, 4]
    mask = np.array([[1] * n + [0] * (6 - n) for n in lengths])
    ids = np.arange(42).reshape(7, 6) * mask
    enc = _MaskedMean()
    cache = ItemTextCache({"input_ids": ids, "attention_mask": mask}, every=5, chunk=3)
    rows = torch.tensor([6, 0, 1, 3, 5])  # lengths 4 5 1 2 1
    out = cache.encode(enc, rows)
    expected = torch.tensor([[(ids[r] * mask[r]).sum() / mask[r].sum(), mask[r].sum()] for r in rows.tolist()])
    assert torch.allclose(out, expected.float())
    assert enc.widths == [2, 5]  # chunks (1, 1, 2) and (4, 5), each cut to its longest text
    cache.refresh(enc)
    assert enc.widths[2:] == [2, 5, 5]  # lengths (1, 1, 2) (3, 4, 5) (5)
    assert torch.allclose(cache.cache[:, 1], torch.tensor(lengths).float())


def _shared(*overrides):
    """6 users, 8 items with short texts; stage 1 fitted for a few steps."""
    from raymm.config import load_config
    from raymm.graph import EvalSplit, TrainGraph
    from raymm.methods.base import SharedData
    from raymm.methods.ptmrec import frozen_text_vectors
    from raymm.models.registry import to_payload
    from raymm.models.text_encoder import tokenize

    cfg = load_config("conf/ptmrec.yaml", ["model.embedding_dim=8", "train.fanouts=[3,3]", "train.batch_size=8",
                                            "method.ptmrec.refresh_every=2", "method.ptmrec.max_tokens=8", *overrides])
    users = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    items = np.array([0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 0])
    texts = ["red shirt", "blue shirt", "green shirt", "toy car", "toy train", "toy plane", "milk bottle", "baby food"]
    shared = SharedData(TrainGraph.from_interactions(users, items, 6, 8), EvalSplit.from_interactions(users[:2], items[2:4]),
                        None, None, {"tokens": tokenize(texts, 8)})
    shared.features = {"text": frozen_text_vectors(shared.extras["tokens"])}
    return cfg, shared, users, items


def _steps(task, users, items, steps):
    opt = task.optimizer(list(task.module.parameters()))
    parts = {}
    for _ in range(steps):
        loss, parts = task.loss(task.module, task.batch_from_rows({"user_id": users, "item_id": items}))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return parts


@pytest.mark.parametrize("peft", ["lora", "prompt"])
def test_stage2_tunes_only_the_adapter_and_the_recommender_from_stage_1(peft):
    from raymm.methods.ptmrec.tasks import RecommenderTask, TuneTask
    from raymm.models.registry import from_payload, to_payload

    cfg, shared, users, items = _shared(f"method.ptmrec.peft={peft}")
    torch.manual_seed(0)
    stage1 = RecommenderTask(cfg, shared)
    stage1.setup(0, 1, "cpu")
    stage1.start_epoch(0)
    _steps(stage1, users, items, 3)
    shared.extras["recommender"] = to_payload(stage1.module)
    task = TuneTask(cfg, shared)
    task.on_fresh_start("cpu")
    assert torch.equal(task.module.rec.embedding.weight, stage1.module.embedding.weight)  # starts from stage 1
    task.setup(0, 1, "cpu")
    task.start_epoch(0)
    base = {n: p.detach().clone() for n, p in task.module.encoder.named_parameters() if not p.requires_grad}
    adapter = {n: p.detach().clone() for n, p in task.module.encoder.named_parameters() if p.requires_grad}
    rec = task.module.rec.embedding.weight.detach().clone()
    parts = _steps(task, users, items, 3)
    assert set(parts) == {"bpr", "kt_item", "kt_user"} and all(np.isfinite(v) for v in parts.values())
    for n, p in task.module.encoder.named_parameters():
        assert torch.equal(p, base[n]) if n in base else not torch.equal(p, adapter[n]), n
    assert not torch.equal(task.module.rec.embedding.weight, rec)
    assert task.module.cache.refreshes == 2  # first use, then after step 2 of 3
    # the saved model: adapter, recommender and tokens, no base weights; it ranks as the trained one
    payload = task.payload()
    assert not any(k.startswith("encoder.") and "lora" not in k and "prompt" not in k for k in payload["state_dict"])
    again = from_payload(payload)
    u1, i1 = task.module.full_embeddings(task.adj)
    u2, i2 = again.full_embeddings(task.adj)
    assert torch.allclose(u1, u2, atol=1e-5) and torch.allclose(i1, i2, atol=1e-5)
    # learning rates: the recommender at method.ptmrec.tune_lr (conf/ptmrec.yaml: 0.001; null: train.lr),
    # the adapter at encoder_lr
    lrs = [g["lr"] for g in task.optimizer(list(task.module.parameters())).param_groups]
    assert lrs == [cfg.method.ptmrec.tune_lr, cfg.method.ptmrec.encoder_lr] == [0.001, 0.001]
    cfg2, _, _, _ = _shared(f"method.ptmrec.peft={peft}", "method.ptmrec.tune_lr=null")
    task.cfg = cfg2
    assert [g["lr"] for g in task.optimizer(list(task.module.parameters())).param_groups] == [cfg2.train.lr, 0.001]
    assert cfg2.train.lr == 0.01


def test_a_new_item_is_embedded_as_an_item_without_interactions_would_be():
    """Cold start: new_item_embeddings(text) equals the final embedding full_embeddings gives the
    same text as a catalogue item with no interactions and a zero ID embedding."""
    from raymm.graph import TrainGraph
    from raymm.methods.ptmrec.model import PTMRecModel
    from raymm.models.text_encoder import tokenize

    cfg, shared, users, items = _shared()
    texts = ["red shirt", "blue shirt", "green shirt", "toy car", "toy train", "toy plane", "milk bottle", "baby food",
             "wooden toy boat"]
    tokens = tokenize(texts, 8)
    torch.manual_seed(0)
    model = PTMRecModel(6, 9, 8, 2, tokens, "lora", lora_rank=2).eval()
    with torch.no_grad():
        model.rec.embedding.weight[6 + 8].zero_()  # item 8: no ID embedding
        for p in model.encoder.parameters():
            if p.requires_grad:
                p.add_(0.05)  # a tuned (non-zero) adapter
    adj = TrainGraph.from_interactions(users, items, 6, 9).normalized_adjacency()  # item 8 has no interactions
    _, table = model.full_embeddings(adj)
    new = model.new_item_embeddings(torch.as_tensor(tokens["input_ids"][8:]), torch.as_tensor(tokens["attention_mask"][8:]))
    assert torch.allclose(new[0], table[8], atol=1e-6) and new.abs().sum() > 0


def test_without_knowledge_transfer_stage2_is_plain_bpr():
    from raymm.methods.ptmrec.tasks import TuneTask
    from raymm.models.lightgcn_m import LightGCNM
    from raymm.models.registry import to_payload

    cfg, shared, users, items = _shared("method.ptmrec.kt_item_weight=0", "method.ptmrec.kt_user_weight=0")
    shared.extras["recommender"] = to_payload(LightGCNM(6, 8, shared.features, 8, 2))
    task = TuneTask(cfg, shared)
    task.setup(0, 1, "cpu")
    task.start_epoch(0)
    assert set(_steps(task, users, items, 1)) == {"bpr"}
    assert TuneTask.loss_label(cfg) == "BPR + L2"


def test_an_option_of_the_other_adapter_is_an_error():
    from raymm.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="prompt_tokens=4 does nothing with peft=lora"):
        load_config("conf/ptmrec.yaml", ["method.ptmrec.prompt_tokens=4"])


def test_new_item_files_and_models_that_cannot_embed_text_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raymm.errors import InputError
    from raymm.methods.ptmrec.coldstart import embed_new_items, read_new_item_texts

    good = tmp_path / "new.parquet"
    pq.write_table(pa.table({"text": ["wooden toy boat", "soft baby hat"]}), good)
    assert read_new_item_texts(str(good)) == ["wooden toy boat", "soft baby hat"]
    pq.write_table(pa.table({"title": ["x"]}), tmp_path / "nocol.parquet")
    with pytest.raises(InputError, match=r"nocol.parquet: no column 'text'"):
        read_new_item_texts(str(tmp_path / "nocol.parquet"))
    pq.write_table(pa.table({"text": ["ok", " "]}), tmp_path / "blank.parquet")
    with pytest.raises(InputError, match=r"blank.parquet: column 'text', row 1: expected a non-empty string"):
        read_new_item_texts(str(tmp_path / "blank.parquet"))
    with pytest.raises(InputError, match=r"this model \(lightgcn\) cannot embed new items"):
        embed_new_items({"kind": "lightgcn", "hparams": {}, "state_dict": {}}, ["x"])


def test_cold_items_are_ranked_among_themselves_from_their_text_by_hand():
    from raymm.errors import InputError
    from raymm.graph import TrainGraph
    from raymm.methods.ptmrec.coldstart import cold_item_metrics
    from raymm.models.lightgcn_m import LightGCNM

    x = torch.tensor([[1.0, 1.0], [1.0, 0.1], [0.1, 1.0], [1.0, 0.5]])
    model = LightGCNM(2, 4, {"text": x}, dim=2, num_layers=0, feature_weight=1.0)
    with torch.no_grad():
        model.embedding.weight.copy_(torch.tensor([[1.0, 0], [0, 1.0], [9, 9], [9, 9], [9, 9], [9, 9]]))
        model.extractors["text"].linear.weight.copy_(torch.eye(2))
        model.extractors["text"].linear.bias.zero_()
    graph = TrainGraph.from_interactions(np.array([0, 1]), np.array([0, 0]), 2, 4)
    cold = np.array([1, 2, 3])
    # Item ID embeddings (the 9s) are ignored: a cold item is its text alone. User 0 ranks 1, 3, 2;
    # user 1 ranks 2, 3, 1. User 0's pair (0, 3) is given twice and counts once.
    got = cold_item_metrics(model, graph, np.array([0, 0, 1]), np.array([3, 3, 1]), cold, [1, 2])
    assert got["recall@1"] == 0.0
    assert got["recall@2"] == pytest.approx(0.5)
    assert got["ndcg@2"] == pytest.approx((1 / math.log2(3)) / 2)
    with pytest.raises(InputError, match="not among the cold items"):
        cold_item_metrics(model, graph, np.array([0]), np.array([0]), cold, [1])
