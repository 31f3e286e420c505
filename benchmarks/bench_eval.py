"""Full-ranking evaluation at scale: every evaluated user scored against ALL items, training items
masked, top-K by item chunks with a running top-K (``raymm.evaluation``), so memory stays bounded
whatever the catalogue.

    .venv/bin/python benchmarks/bench_eval.py                                  # 1M users x 100k items
    .venv/bin/python benchmarks/bench_eval.py --users 1000000 --items 100000 --measure 50000

Random embeddings (d = 64), ``--train-per-user`` random training items per user (masked) and one
validation item per user. ``--measure`` users are scored (the first ones, like one worker's shard);
the time for all ``--users`` is projected from their throughput and marked "projected". Peak memory
is this process's peak RSS, with the graph, the embeddings and the eval split included; the figure
that matters is how it changes with ``--items`` (the score block is fixed at
``raymm.evaluation.SCORE_BLOCK``).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from raymm.evaluation import SCORE_BLOCK, finalize, metric_sums
from raymm.graph import EvalSplit, TrainGraph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--train-per-user", type=int, default=20)
    parser.add_argument("--measure", type=int, default=50_000, help="users actually scored (0 = all)")
    parser.add_argument("--user-batch", type=int, default=1024, help="eval.user_batch_size")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    t = time.perf_counter()
    users = np.repeat(np.arange(args.users, dtype=np.int64), args.train_per_user)
    items = rng.integers(0, args.items, len(users))
    graph = TrainGraph.from_interactions(users, items, args.users, args.items)
    measured = args.measure or args.users
    split = EvalSplit.from_interactions(np.arange(measured, dtype=np.int64), rng.integers(0, args.items, measured))
    user_emb = torch.from_numpy(rng.standard_normal((args.users, args.dim), dtype=np.float32))
    item_emb = torch.from_numpy(rng.standard_normal((args.items, args.dim), dtype=np.float32))
    setup_s = time.perf_counter() - t

    t = time.perf_counter()
    sums = metric_sums(user_emb, item_emb, split, graph, [10, 20, 50], args.user_batch)
    seconds = time.perf_counter() - t
    rate = measured / seconds
    total = args.users / rate
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    recall = finalize(sums, [10, 20, 50])["recall@20"]
    print(f"{args.users:,} users x {args.items:,} items, d={args.dim}, {args.train_per_user} masked training "
          f"items per user, user batch {args.user_batch}, score block {SCORE_BLOCK:,} scores, "
          f"{torch.get_num_threads()} torch threads (setup {setup_s:.0f} s)")
    print(f"scored {measured:,} users in {seconds:.1f} s: {rate:,.0f} users/s, {rate * args.items / 1e6:,.0f}M "
          f"user-item scores/s; all {args.users:,} users: {total:,.0f} s"
          f"{' (projected)' if measured < args.users else ''}; peak RSS {peak:,.0f} MB; "
          f"recall@20 of random embeddings {recall:.5f} (about 20/{args.items:,} = {20 / args.items:.5f})")


if __name__ == "__main__":
    main()
