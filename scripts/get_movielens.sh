#!/usr/bin/env bash
# MovieLens-100k as a raymm dataset with a text modality, from the copy inside the recbole 1.2.1 wheel
# on PyPI (only its data files are unpacked; RecBole's code is neither installed nor used).
#   bash scripts/get_movielens.sh [loo|ratio:0.2]   ->  datasets/ml-100k[-ratio0.2]
# Steps: download the wheel (cached in datasets/.cache), unzip ml-100k.inter/.item, import with the
# time split, then encode "title (year). Genres: ..." with all-MiniLM-L6-v2 (jobs/encode_text.py).
set -euo pipefail
cd "$(dirname "$0")/.."
split=${1:-loo}
dest=datasets/ml-100k$([ "$split" = loo ] || echo "-${split/:/}")
cache=datasets/.cache
if [ -f "$dest/manifest.json" ] && grep -q '"text"' "$dest/manifest.json"; then
  echo "get_movielens: $dest exists"; exit 0
fi
mkdir -p "$cache"
wheel=$(ls "$cache"/recbole-1.2.1-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
  .venv/bin/python -m pip download -q --no-deps recbole==1.2.1 -d "$cache"
  wheel=$(ls "$cache"/recbole-1.2.1-*.whl | head -1)
fi
raw=$cache/ml-100k
mkdir -p "$raw"
.venv/bin/python - "$wheel" "$raw" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for ext in ("inter", "item"):
        with open(f"{out}/ml-100k.{ext}", "wb") as f:
            f.write(z.read(f"recbole/dataset_example/ml-100k/ml-100k.{ext}"))
PY
.venv/bin/python jobs/import_dataset.py --split "$split" --overwrite "$raw" "$dest"
.venv/bin/python jobs/encode_text.py "$dest" --overwrite
