"""Add a text modality to a dataset: every item's ``text`` (the items table) through the packaged
all-MiniLM-L6-v2 encoder (384-d), with Ray Data over encoder replicas; written as
``features/<name>.parquet`` and listed in the manifest.

    python jobs/encode_text.py datasets/ml-100k
    python jobs/encode_text.py datasets/ml-100k --replicas 2 --overwrite
    python jobs/encode_text.py datasets/ml-100k --tokens 32      # tokens for PTMRec (tokens/minilm-32.parquet)

``--tokens T`` stores the texts tokenised to T tokens instead of encoding them: PTMRec runs the
encoder itself and reads them (``method.ptmrec.max_tokens: T``) instead of tokenising at every launch.
"""

import argparse

import ray

from raymm.cli import report_input_errors
from raymm.cluster import init_ray
from raymm.data.text_features import encode_item_text, tokenize_item_text

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("data", help="canonical dataset directory or URI (with an items table that has 'text')")
parser.add_argument("--name", default="text", help="modality name (default: text)")
parser.add_argument("--replicas", type=int, default=1, help="encoder actors (1 CPU each)")
parser.add_argument("--batch-size", type=int, default=256, help="texts per map_batches batch")
parser.add_argument("--overwrite", action="store_true", help="replace an existing modality (or tokens file)")
parser.add_argument("--tokens", type=int, default=None, metavar="T", help="store the texts tokenised to T tokens instead")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2

if args.tokens is not None and args.tokens <= 0:
    from raymm.errors import InputError

    raise InputError(f"--tokens {args.tokens}: expected a positive integer")
init_ray()
try:
    if args.tokens is not None:
        rel = tokenize_item_text(args.data, args.tokens, args.replicas, args.batch_size, args.overwrite)
    else:
        manifest = encode_item_text(args.data, args.name, args.replicas, args.batch_size, args.overwrite)
finally:
    ray.shutdown()
if args.tokens is not None:
    print(f"[raymm] {args.data}: item texts tokenised to {args.tokens} tokens in {rel}")
    raise SystemExit(0)
print(f"[raymm] {args.data}: modality '{args.name}' ({manifest.modalities[args.name].dim}-d) for "
      f"{manifest.num_items} items")
