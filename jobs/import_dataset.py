"""Import a dataset into raymm's canonical layout (validated; written atomically).

    python jobs/import_dataset.py ../shared/data/tiktok datasets/tiktok
    python jobs/import_dataset.py --layout mmrec ../shared/data/tiktok datasets/tiktok-mmrec
    python jobs/import_dataset.py interactions.parquet datasets/mine --feature image=img.npy
    python jobs/import_dataset.py --split loo data/movielens/ml-100k datasets/ml-100k

Layouts: promptmm (train.json, val.json [, test.json], *_feat.npy), mmrec (*.inter + *_feat.npy),
parquet (user_id, item_id, split [, timestamp, weight]), recbole (RecBole atomic files: *.inter
with user_id:token ... headers [+ *.item]; split by time with --split); auto-detected by default.
"""

import argparse
import logging

from raymm.cli import report_input_errors
from raymm.data.importers import detect_layout, import_any
from raymm.errors import InputError

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("src", help="source directory (or .parquet file)")
parser.add_argument("dest", help="destination directory or URI (must not exist unless --overwrite)")
parser.add_argument("--layout", default="auto", choices=["auto", "promptmm", "mmrec", "parquet", "recbole"])
parser.add_argument("--split", default=None, metavar="loo|ratio:R",
                    help="recbole layout: split by time, leave-one-out (default) or the last R of each timeline "
                         "(e.g. ratio:0.2); recorded in the manifest")
parser.add_argument("--min-len", type=int, default=5, help="recbole layout: drop users with fewer interactions")
parser.add_argument("--num-items", type=int, default=None, help="item count when no feature file fixes it")
parser.add_argument("--unknown-eval-users", default="drop", choices=["drop", "error"],
                    help="val/test rows of users with no training interaction: drop (logged) or error")
parser.add_argument("--feature", action="append", default=[], metavar="NAME=PATH.npy",
                    help="feature file for the parquet layout (repeatable)")
parser.add_argument("--remap", action="store_true",
                    help="re-map user and item ids to dense 0..n-1 (original ids kept in the dataset's id_maps/)")
parser.add_argument("--overwrite", action="store_true")
args = parser.parse_args()
report_input_errors()  # bad input: one clear line on stderr, exit status 2
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

kwargs = {"num_items": args.num_items, "unknown_eval_users": args.unknown_eval_users, "overwrite": args.overwrite,
          "remap": args.remap}
if args.feature:
    bad = [item for item in args.feature if not item.partition("=")[0] or not item.partition("=")[2]]
    if bad:
        raise InputError(f"--feature {bad[0]!r}: expected NAME=PATH.npy, e.g. --feature image=img.npy")
    kwargs["feature_files"] = dict(item.split("=", 1) for item in args.feature)
layout = detect_layout(args.src) if args.layout == "auto" else args.layout
if layout == "recbole":
    kwargs.update(split=args.split or "loo", min_len=args.min_len)
    kwargs.pop("num_items")
elif args.split is not None:
    raise InputError(f"--split applies to the recbole layout (RecBole atomic files); {args.src} is {layout}")
manifest = import_any(args.src, args.dest, layout=layout, **kwargs)
print(f"[raymm] imported {args.src} -> {args.dest}: {manifest.num_users} users, {manifest.num_items} items, "
      f"splits {manifest.split_counts}, modalities { {k: v.dim for k, v in manifest.modalities.items()} }")
