#!/usr/bin/env bash
# README command (a): set up, start a local Ray cluster (127.0.0.1, token auth), submit the main job
# with `ray job submit`, stream its progress, stop exactly that cluster, and say where results are.
#   bash scripts/run_default.sh [--config conf/promptmm.yaml] [dotted.key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
source cluster/local_head.sh
trap 'raymm_head_stop $?' EXIT   # on failure the head's logs are kept and their place printed
raymm_head_start "${RAYMM_CPUS:-4}"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--config conf/promptmm.yaml)
raymm_job_submit -- python jobs/train.py "${args[@]}" "output.dir=$PWD/outputs"
