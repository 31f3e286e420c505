"""Write top-K recommendations of a registered (or logged) model to Parquet, batched and parallel
with Ray Data; training items are excluded.

    python jobs/recommend.py --model models:/raymm-student@champion --tracking-uri sqlite:///$PWD/outputs/mlflow.db \
        --out outputs/recs.parquet [--users 0,5,7] [--k 20]

Output: a Parquet dataset (directory) with user_id, rank, item_id, score; written to a temporary
directory beside --out and renamed at the end.
"""

import argparse
import os
import shutil

import mlflow.pyfunc
import numpy as np
import ray.data

from raymm.cli import report_input_errors
from raymm.cluster import init_ray
from raymm.serving import RecommenderModel

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", required=True, help="MLflow model URI (models:/<name>@<alias>, runs:/<id>/<name>)")
parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
parser.add_argument("--out", required=True, help="output Parquet directory (must not exist)")
parser.add_argument("--users", default=None, help="comma-separated user ids (default: all users)")
parser.add_argument("--k", type=int, default=20)
parser.add_argument("--batch-size", type=int, default=1024, help="users per batch")
parser.add_argument("--concurrency", type=int, default=2, help="parallel model replicas")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2
if os.path.exists(args.out):
    raise SystemExit(f"error: {args.out} already exists")
if args.tracking_uri:
    mlflow.set_tracking_uri(args.tracking_uri)

# 1. The model (once here, to know the users; each Ray Data replica loads its own copy).
model: RecommenderModel = mlflow.pyfunc.load_model(args.model).unwrap_python_model()
users = (np.arange(model.num_users) if args.users is None
         else np.array([int(u) for u in args.users.split(",")], dtype=np.int64))
bad = users[(users < 0) | (users >= model.num_users)]
if bad.size:
    raise SystemExit(f"error: user ids out of range [0, {model.num_users}): {bad[:5].tolist()}")


class Recommend:
    def __init__(self, uri: str, tracking_uri: str | None, k: int):
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        self.model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
        self.k = k

    def __call__(self, batch):
        return self.model.recommend(batch["user_id"], self.k)


# 2. Batched, parallel scoring with Ray Data; atomic write.
init_ray()
tmp = f"{os.path.abspath(args.out)}.tmp-{os.getpid()}"
try:
    (ray.data.from_numpy(users).rename_columns({"data": "user_id"})
     .map_batches(Recommend, fn_constructor_kwargs={"uri": args.model, "tracking_uri": args.tracking_uri, "k": args.k},
                  batch_size=args.batch_size, batch_format="numpy", concurrency=args.concurrency, num_cpus=0.5)
     .write_parquet(tmp))
    os.replace(tmp, args.out)
except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
print(f"[raymm] wrote top-{args.k} recommendations for {len(users)} users to {args.out}")
