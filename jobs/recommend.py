"""Write top-K recommendations of a registered (or logged) model to Parquet, batched and parallel
with Ray Data; training items are excluded.

    python jobs/recommend.py --model models:/raymm-student@champion --tracking-uri sqlite:///$PWD/outputs/mlflow.db \
        --out outputs/recs.parquet [--users 0,5,7] [--k 20]

Output: a Parquet dataset (directory) with user_id, rank, item_id, score; written to a temporary
directory beside --out and renamed at the end.

``--new-items items.parquet`` (a ``text`` column; PTMRec models only): items never seen in training
are embedded from their text alone and ranked with the catalogue; they get the ids ``num_items``,
``num_items + 1``, ... in file order (cold start).
"""

import argparse
import os
import shutil

import numpy as np
import ray.data

from raymm.cli import report_input_errors
from raymm.cluster import init_ray
from raymm.errors import InputError
from raymm.model_io import load_recommender

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", required=True, help="MLflow model URI (models:/<name>@<alias>, runs:/<id>/<name>)")
parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
parser.add_argument("--out", required=True, help="output Parquet directory (must not exist)")
parser.add_argument("--users", default=None, help="comma-separated user ids (default: all users)")
parser.add_argument("--k", type=int, default=20)
parser.add_argument("--batch-size", type=int, default=1024, help="users per batch")
parser.add_argument("--concurrency", type=int, default=2, help="parallel model replicas")
parser.add_argument("--new-items", default=None, help="Parquet file with a 'text' column: new items to embed and rank "
                                                       "(PTMRec models)")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2
if os.path.exists(args.out):
    raise InputError(f"--out {args.out} already exists")
for flag, value in (("--k", args.k), ("--batch-size", args.batch_size), ("--concurrency", args.concurrency)):
    if value <= 0:
        raise InputError(f"{flag} {value}: expected a positive integer")

# 1. The model (once here, to know the users; each Ray Data replica loads its own copy).
model = load_recommender(args.model, args.tracking_uri)
try:
    users = (np.arange(model.num_users) if args.users is None
             else np.array([int(u) for u in args.users.split(",")], dtype=np.int64))
except ValueError:
    raise InputError(f"--users {args.users!r}: expected comma-separated integer user ids") from None
bad = users[(users < 0) | (users >= model.num_users)]
if bad.size:
    raise InputError(f"--users: ids out of range [0, {model.num_users}): {bad[:5].tolist()}")
new_items = None
if args.new_items:  # embedded once here; every replica appends the same rows
    from raymm.methods.ptmrec.coldstart import embed_new_items, read_new_item_texts
    from raymm.model_io import load_payload

    texts = read_new_item_texts(args.new_items)
    if not getattr(model, "weights", None):
        raise InputError(f"--new-items: {args.model} was logged without its saved model; retrain it to embed new items")
    new_items = embed_new_items(load_payload(model.weights), texts)
    first = model.item_emb.shape[0]
    model.add_items(new_items)
    print(f"[raymm] {len(texts)} new items from {args.new_items}: item ids {first}..{first + len(texts) - 1}")


class Recommend:
    def __init__(self, uri: str, tracking_uri: str | None, k: int, new_items=None):
        self.model = load_recommender(uri, tracking_uri)
        if new_items is not None:
            self.model.add_items(new_items)
        self.k = k

    def __call__(self, batch):
        return self.model.recommend(batch["user_id"], self.k)


# 2. Batched, parallel scoring with Ray Data; atomic write.
init_ray()
tmp = f"{os.path.abspath(args.out)}.tmp-{os.getpid()}"
try:
    (ray.data.from_numpy(users).rename_columns({"data": "user_id"})
     .map_batches(Recommend, fn_constructor_kwargs={"uri": args.model, "tracking_uri": args.tracking_uri, "k": args.k,
                                           "new_items": new_items},
                  batch_size=args.batch_size, batch_format="numpy", concurrency=args.concurrency, num_cpus=0.5)
     .write_parquet(tmp))
    os.replace(tmp, args.out)
except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
print(f"[raymm] wrote top-{min(args.k, model.item_emb.shape[0])} recommendations for {len(users)} users to {args.out}")
