"""Evaluate a saved model on any split of any dataset (full ranking over all items, training items
masked). The last line of output is the metrics as one JSON object.

    python jobs/evaluate.py --model outputs/runs/<run>/student_best_model.pt --data datasets/tiktok --split val
    python jobs/evaluate.py --model outputs/runs/<run>/teacher_best_model.pt --data datasets/tiktok --split val
    python jobs/evaluate.py --model models:/raymm-promptmm@champion --tracking-uri sqlite:///$PWD/outputs/mlflow.db \
        --data ../shared/data/tiktok --split val

--model is a saved payload (any method's ``*_best_model.pt`` or a checkpoint directory: rebuilt from
the model registry and run on the training graph) or a served MLflow model (``runs:/<id>/model``,
``models:/<name>@<alias>``: its embedding tables). A sequential model (SASRec, KDSR, ODMT) ranks each
interaction of the split from the items before it in its user's timeline (HR = recall, NDCG, MRR;
history items masked only with --mask-history).

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
from raymm.errors import InputError
from raymm.evaluation import finalize, metric_sums
from raymm.graph import EvalSplit, TrainGraph
from raymm.model_io import ranking_tables, sequential_model
from raymm.sequences import SequenceData, next_item_sums

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", required=True, help="checkpoint dir, best_model.pt, or MLflow model URI")
parser.add_argument("--data", required=True, help="dataset directory or URI")
parser.add_argument("--split", default="val", choices=["val", "test"])
parser.add_argument("--ks", default="10,20,50", help="comma-separated cut-offs")
parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI for runs:/ and models:/ URIs")
parser.add_argument("--mask-history", action="store_true",
                    help="sequential models: never rank items already in the history (as eval.mask_history)")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2
try:
    ks = sorted({int(k) for k in args.ks.split(",")})
except ValueError:
    ks = []
if not ks or ks[0] <= 0:
    raise InputError(f"--ks {args.ks!r}: expected comma-separated positive integers, e.g. 10,20,50")

# 1. Data: canonical, or imported on the fly into a temporary directory.
tmp = tempfile.TemporaryDirectory()
uri = args.data
if "://" not in uri and detect_layout(uri) != "canonical":
    uri = os.path.join(tmp.name, "dataset")
    import_any(args.data, uri)
dataset = load_dataset(uri)
splits = dataset.read_interactions()
if len(splits[args.split][0]) == 0:
    raise InputError(f"{args.data} has no '{args.split}' interactions")

# 2-3. A sequential model ranks every split interaction from the items before it in its user's
#      timeline; a graph model's final embeddings (a payload runs on the training graph; a served
#      model has tables) rank every split user's items. Either is checked against the dataset.
seq_model = sequential_model(args.model, args.tracking_uri)
if seq_model is not None:
    if seq_model.num_items != dataset.num_items:
        raise InputError(f"model {args.model} has {seq_model.num_items} items, the dataset has {dataset.num_items}")
    seq = SequenceData.from_dataset(dataset)
    examples = seq.examples(args.split)
    metrics = finalize(next_item_sums(seq_model.score, seq, examples, seq_model.max_len, ks, args.mask_history, "cpu"),
                       ks)
    metrics.update({"num_examples": int(len(examples)), "mask_history": args.mask_history})
else:
    if args.mask_history:
        raise InputError("--mask-history applies to sequential models (graph models always mask training items)")
    graph = TrainGraph.from_interactions(*splits["train"], dataset.num_users, dataset.num_items)
    users, items = ranking_tables(args.model, graph, dataset.read_all_features(), args.tracking_uri)
    split = EvalSplit.from_interactions(*splits[args.split])
    metrics = finalize(metric_sums(users, items, split, graph, ks), ks)
    metrics["num_users"] = int(len(split.users))
metrics.update({"split": args.split, "model": args.model, "data": args.data})
tmp.cleanup()
print(json.dumps(metrics, sort_keys=True))
