import numpy as np
import pytest
import torch

from raymm.graph import TrainGraph
from raymm.models.propagation import mean_of_layers_full, mean_of_layers_sampled, propagate_block
from raymm.methods.base import triplet
from raymm.sampling import FullNeighbourhood, NegativeSampler, NeighbourSampler, choose, make_batch


@pytest.fixture
def graph():
    rng = np.random.default_rng(0)
    u = rng.integers(0, 30, 400)
    i = rng.integers(0, 20, 400)
    key = np.unique(u * 20 + i)
    return TrainGraph.from_interactions(key // 20, key % 20, 30, 20)


def test_negatives_are_never_training_positives(graph):
    sampler = NegativeSampler(graph, seed=1)
    users = np.repeat(np.arange(30), 50)
    neg = sampler.sample(users, 3)
    assert neg.shape == (len(users), 3)
    indptr, items = graph.user_items()
    for u, row in zip(users, neg):
        assert not set(row.tolist()) & set(items[indptr[u]:indptr[u + 1]].tolist())


def test_bitmap_and_binary_search_membership_agree(graph):
    """The bitmap (small U x I) and the binary search (large) answer alike, so the same seed draws
    the same negatives either way."""
    fast, slow = NegativeSampler(graph, seed=3), NegativeSampler(graph, seed=3, bitmap_max_bytes=0)
    assert fast.bitmap is not None and slow.bitmap is None
    users, items = np.divmod(np.arange(graph.num_users * graph.num_items), graph.num_items)
    member = fast.is_positive(users, items)
    assert np.array_equal(member, slow.is_positive(users, items))
    assert member.sum() == len(graph.positive_keys())
    drawn = np.repeat(np.arange(graph.num_users), 20)
    assert np.array_equal(fast.sample(drawn, 4), slow.sample(drawn, 4))


def test_negative_sampler_fails_clearly_when_impossible():
    g = TrainGraph.from_interactions(np.array([0, 0]), np.array([0, 1]), 1, 2)
    with pytest.raises(RuntimeError, match="every item"):
        NegativeSampler(g, max_rounds=5).sample(np.array([0]))


def test_fanouts_are_respected(graph):
    sampler = NeighbourSampler(graph, [3, 2])
    blocks = sampler.sample(torch.tensor([0, 5, 31, 40]))
    assert len(blocks) == 2
    for block, fanout in zip(blocks, [3, 2]):
        in_deg = torch.bincount(block.edge_dst, minlength=block.num_dst)
        full_deg = torch.from_numpy(graph.degree)[block.src_nid[:block.num_dst].long()]
        assert torch.equal(in_deg, torch.minimum(full_deg.long(), torch.tensor(fanout)))
    # seeds are a prefix of every layer's nodes
    assert blocks[-1].src_nid[:4].tolist() == [0, 5, 31, 40]
    assert torch.equal(blocks[0].src_nid[:blocks[0].num_dst], blocks[1].src_nid)


def test_full_fanout_sampling_equals_full_graph_propagation(graph):
    h0 = torch.randn(graph.num_nodes, 4)
    seeds = torch.arange(graph.num_nodes)
    blocks = NeighbourSampler(graph, [-1, -1]).sample(seeds)
    sampled = mean_of_layers_sampled(h0[blocks[0].src_nid], blocks, graph.num_nodes)
    full = mean_of_layers_full(h0, graph.normalized_adjacency(), 2)
    assert torch.allclose(sampled, full, atol=1e-5)


def test_sampled_propagation_is_unbiased(graph):
    torch.manual_seed(0)
    h0 = torch.randn(graph.num_nodes, 4)
    seeds = torch.arange(graph.num_users)  # users have more neighbours than the fanout
    sampler = NeighbourSampler(graph, [3])
    exact = (graph.normalized_adjacency() @ h0)[seeds]
    est = torch.zeros_like(exact)
    n = 3000
    for _ in range(n):
        block = sampler.sample(seeds)[0]
        est += propagate_block(h0[block.src_nid], block)
    est /= n
    assert torch.allclose(est, exact, atol=0.05), (est - exact).abs().max()


def test_make_batch_positions(graph):
    users = np.array([0, 1, 0])
    pos = np.array([2, 3, 4])
    neg = np.array([[5], [6], [7]])
    batch = make_batch(users, pos, neg, graph.num_users, NeighbourSampler(graph, [2]))
    seeds = batch.blocks[-1].src_nid[:batch.blocks[-1].num_dst]
    assert seeds[batch.user_pos].tolist() == [0, 1, 0]
    assert (seeds[batch.pos_pos] - graph.num_users).tolist() == [2, 3, 4]
    assert (seeds[batch.neg_pos] - graph.num_users).tolist() == [[5], [6], [7]]


@pytest.mark.parametrize("normalization", ["symmetric", "left"])
def test_full_propagation_batch_equals_full_graph_inference(graph, normalization):
    """train.propagation=full: every node is a seed, positions are node ids, and a LightGCN forward
    gives exactly full-graph inference; the batch's own nodes are listed in ``nodes``."""
    from raymm.models.lightgcn import LightGCN

    model = LightGCN(graph.num_users, graph.num_items, 4, 2, normalization=normalization)
    users, pos, neg = np.array([0, 1, 0]), np.array([2, 3, 4]), np.array([[5], [6], [7]])
    batch = make_batch(users, pos, neg, graph.num_users, FullNeighbourhood(graph, 2, normalization))
    assert batch.user_pos.tolist() == [0, 1, 0] and (batch.pos_pos - graph.num_users).tolist() == [2, 3, 4]
    assert (batch.neg_pos - graph.num_users).tolist() == [[5], [6], [7]]
    assert batch.nodes.tolist() == [0, 1] + [graph.num_users + i for i in range(2, 8)]
    emb, ego = model(batch)
    users_full, items_full = model.full_embeddings(graph.normalized_adjacency(normalization=normalization))
    assert torch.allclose(emb, torch.cat([users_full, items_full]), atol=1e-6)
    assert torch.equal(batch.own(ego), model.embedding.weight[batch.nodes])
    # the loss's view: the batch's own rows once, positions among them
    small = batch.compact()
    assert small.nodes is None and torch.equal(small.seeds, batch.nodes)
    for a, b in zip(triplet(batch.own(emb), small), triplet(emb, batch)):
        assert torch.equal(a, b)


def test_propagation_choice(graph):
    assert choose(graph, [10, 10], 2048, "sampled") == "sampled"
    assert choose(graph, [10, 10], 16, "full") == "full"
    assert choose(graph, [2, -1], 16, "auto") == "full"  # all neighbours: no sampling to save
    edges = len(graph.indices)  # 2 layers x E vs 3B(f + f^2) = 3B x 6 for fan-outs [2, 2]
    assert choose(graph, [2, 2], -(-8 * edges // 18), "auto") == "full"
    assert choose(graph, [2, 2], 8 * edges // 18 - 1, "auto") == "sampled"


def test_training_rows_are_read_once_when_they_fit_a_quarter_of_the_object_store():
    from types import SimpleNamespace

    from raymm.train.run import should_materialize

    ds = SimpleNamespace(manifest=SimpleNamespace(split_counts={"train": 1000, "val": 10}))
    assert should_materialize(ds, "auto", object_store_bytes=64_000)  # 16 kB <= 16 kB
    assert not should_materialize(ds, "auto", object_store_bytes=63_999)
    assert should_materialize(ds, "always", object_store_bytes=0)
    assert not should_materialize(ds, "never", object_store_bytes=1e12)


def test_rows_gathers_like_indexing_with_the_same_gradient():
    """``rows(x, idx)`` is ``x[idx]`` for an index of any shape, gradient included (through index_select)."""
    from raymm.models.propagation import rows

    x = torch.randn(6, 3, requires_grad=True)
    idx = torch.tensor([[0, 5, 5], [2, 0, 1]])
    g = torch.randn(2, 3, 3)
    out = rows(x, idx)
    assert out.shape == (2, 3, 3) and torch.equal(out, x[idx])
    (out * g).sum().backward()
    expected = torch.zeros(6, 3).index_put_((idx.reshape(-1),), g.reshape(-1, 3), accumulate=True)
    torch.testing.assert_close(x.grad, expected)


def test_row_dots_equals_dots_of_gathered_rows_with_the_same_gradients():
    """``row_dots`` (a sampled product and bag sums on the CPU) gives the scores and gradients of
    ``bmm`` on the gathered rows, with repeated columns within and across rows and rows never used."""
    from raymm.models.propagation import row_dots, rows

    torch.manual_seed(0)
    table = torch.randn(50, 8, dtype=torch.float64, requires_grad=True)
    anchors = torch.randn(30, 8, dtype=torch.float64, requires_grad=True)
    cols = torch.randint(0, 40, (30, 7))
    cols[0] = 3  # one row that repeats a column
    g = torch.randn(30, 7, dtype=torch.float64)
    out = row_dots(table, anchors, cols)
    (out * g).sum().backward()
    grads = table.grad.clone(), anchors.grad.clone()
    table.grad = anchors.grad = None
    ref = torch.bmm(rows(table, cols), anchors.unsqueeze(2)).squeeze(2)
    (ref * g).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grads[0], table.grad)
    torch.testing.assert_close(grads[1], anchors.grad)
    assert torch.equal(grads[0][40:], torch.zeros(10, 8, dtype=torch.float64))
    for _ in range(20):  # memory from torch.empty full of NaN, should the pattern's values come from it
        torch.full((30 * 7,), float("nan"), dtype=torch.float64)
        assert torch.isfinite(row_dots(table, anchors, cols)).all()
    small = torch.tensor([[0, 2, 2], [5, 1, 0]])
    assert torch.autograd.gradcheck(lambda t, a: row_dots(t, a, small), (table[:6].detach().requires_grad_(),
                                                                        anchors[:2].detach().requires_grad_()))


@pytest.mark.parametrize("normalization", ["symmetric", "left"])
def test_sampled_blocks_hold_graph_edges_with_their_weights_in_both_matrices(graph, normalization):
    """raymm's block builder (in place of ``dgl.to_block``): distinct source nodes with the
    destinations as a prefix, every edge a graph edge, the weight (d_i / s_i) d_i^-1/2 d_j^-1/2
    (or without d_j^-1/2 for ``left``), and the CSR matrix and its transpose holding exactly the
    edge lists. Repeated calls reuse the scratch tensors without leaking one call into the next."""
    sampler = NeighbourSampler(graph, [4, 3], normalization)
    edges = set(zip(np.repeat(np.arange(graph.num_nodes), np.diff(graph.indptr)).tolist(), graph.indices.tolist()))
    degree, inv_sqrt = torch.from_numpy(graph.degree), graph.inv_sqrt_degree()
    for seeds in ([3, 7, 30, 41, 49], [0, 1, 2], [45]):
        blocks = sampler.sample(torch.tensor(seeds))
        assert blocks[-1].src_nid[:len(seeds)].tolist() == seeds
        for block in blocks:
            nid = block.src_nid
            assert len(set(nid.tolist())) == len(nid)
            # every source beyond the destinations is there for an edge of this block
            assert set(range(block.num_dst, len(nid))) <= set(block.edge_src.tolist())
            src, dst = nid[block.edge_src], nid[block.edge_dst]
            assert all((d, s) in edges for s, d in zip(src.tolist(), dst.tolist()))
            sampled = torch.bincount(block.edge_dst, minlength=block.num_dst).float()[block.edge_dst]
            expect = inv_sqrt[dst] * degree[dst] / sampled * (inv_sqrt[src] if normalization == "symmetric" else 1)
            assert torch.allclose(block.edge_weight, expect, rtol=1e-6)
            dense = torch.zeros(block.num_dst, len(nid))
            dense.index_put_((block.edge_dst, block.edge_src), block.edge_weight, accumulate=True)
            assert torch.equal(block.adj.mat.to_dense(), dense)
            assert torch.equal(block.adj.mat_t.to_dense(), dense.T)


def test_block_builder_takes_sampled_edges_in_any_order(graph):
    """Edges not grouped by destination (DGL groups them; the builder sorts them if not) give the
    same block."""
    sampler = NeighbourSampler(graph, [4])
    dst_nid = torch.tensor([3, 7, 30, 41, 49])
    src, dst = dgl_sample(sampler, dst_nid)
    grouped = sampler._block(dst_nid, src, dst, *sampler._scratch())
    perm = torch.randperm(len(src), generator=torch.Generator().manual_seed(0))
    shuffled = sampler._block(dst_nid, src[perm], dst[perm], *sampler._scratch())
    assert torch.equal(grouped.src_nid, shuffled.src_nid)
    assert torch.equal(grouped.adj.mat.to_dense(), shuffled.adj.mat.to_dense())
    assert torch.equal(grouped.adj.mat_t.to_dense(), shuffled.adj.mat_t.to_dense())


def dgl_sample(sampler, nodes):
    import dgl

    return dgl.sampling.sample_neighbors(sampler.g, nodes, sampler.fanouts[-1]).edges()
