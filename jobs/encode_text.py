"""Add a text modality to a dataset: every item's ``text`` (the items table) through the packaged
all-MiniLM-L6-v2 encoder (384-d), with Ray Data over encoder replicas; written as
``features/<name>.parquet`` and listed in the manifest.

    python jobs/encode_text.py datasets/ml-100k
    python jobs/encode_text.py datasets/ml-100k --replicas 2 --overwrite
"""

import argparse

import ray

from raymm.cli import report_input_errors
from raymm.cluster import init_ray
from raymm.data.text_features import encode_item_text

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("data", help="canonical dataset directory or URI (with an items table that has 'text')")
parser.add_argument("--name", default="text", help="modality name (default: text)")
parser.add_argument("--replicas", type=int, default=1, help="encoder actors (1 CPU each)")
parser.add_argument("--batch-size", type=int, default=256, help="texts per map_batches batch")
parser.add_argument("--overwrite", action="store_true", help="replace an existing modality of that name")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2

init_ray()
try:
    manifest = encode_item_text(args.data, args.name, args.replicas, args.batch_size, args.overwrite)
finally:
    ray.shutdown()
print(f"[raymm] {args.data}: modality '{args.name}' ({manifest.modalities[args.name].dim}-d) for "
      f"{manifest.num_items} items")
