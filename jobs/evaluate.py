"""Evaluate a saved model on any split of any dataset (full ranking over all items, training items
masked). The last line of output is the metrics as one JSON object.

    python jobs/evaluate.py --model outputs/runs/<run>/student_best_model.pt --data datasets/tiktok --split val
    python jobs/evaluate.py --model outputs/runs/<run>/teacher_best_model.pt --data datasets/tiktok --split val
    python jobs/evaluate.py --model runs:/<mlflow run id>/model --tracking-uri sqlite:///outputs/mlflow.db \
        --data ../shared/data/tiktok --split val

--data is a canonical dataset (manifest.json) or a PromptMM/MMRec directory (imported to a
temporary directory first). The model's user/item counts must match the dataset's.
"""

import argparse
import json
import os
import tempfile

from raymm.cli import report_input_errors
from raymm.data.importers import detect_layout, import_any
from raymm.data.store import load_dataset
from raymm.evaluation import finalize, metric_sums
from raymm.graph import EvalSplit, TrainGraph
from raymm.model_io import load_model

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", required=True, help="checkpoint dir, best_model.pt, or MLflow model URI")
parser.add_argument("--data", required=True, help="dataset directory or URI")
parser.add_argument("--split", default="val", choices=["val", "test"])
parser.add_argument("--ks", default="10,20,50", help="comma-separated cut-offs")
parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for runs:/ and models:/ URIs")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2
ks = [int(k) for k in args.ks.split(",")]

# 1. Data: canonical, or imported on the fly into a temporary directory.
tmp = tempfile.TemporaryDirectory()
uri = args.data
if "://" not in uri and detect_layout(uri) != "canonical":
    uri = os.path.join(tmp.name, "dataset")
    import_any(args.data, uri)
dataset = load_dataset(uri)
splits = dataset.read_interactions()
if len(splits[args.split][0]) == 0:
    raise SystemExit(f"error: {args.data} has no '{args.split}' interactions")

# 2. Model (student or teacher), checked against the dataset.
model = load_model(args.model, args.tracking_uri, features=dataset.read_all_features())
if (model.num_users, model.num_items) != (dataset.num_users, dataset.num_items):
    raise SystemExit(f"error: model {args.model} has {model.num_users} users / {model.num_items} items, "
                     f"dataset {args.data} has {dataset.num_users} / {dataset.num_items}")

# 3. Full-graph embeddings and full-ranking metrics.
graph = TrainGraph.from_interactions(*splits["train"], dataset.num_users, dataset.num_items)
users, items = model.full_embeddings(graph.normalized_adjacency(normalization=model.normalization))
split = EvalSplit.from_interactions(*splits[args.split])
metrics = finalize(metric_sums(users, items, split, graph, ks), ks)
metrics.update({"split": args.split, "num_users": int(len(split.users)), "model": args.model, "data": args.data})
tmp.cleanup()
print(json.dumps(metrics, sort_keys=True))
