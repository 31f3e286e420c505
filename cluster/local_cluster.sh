#!/usr/bin/env bash
# A multi-node Ray cluster on one machine, for trying raymm out the way it runs on a real cluster:
# one head (dashboard and job server) and N worker nodes, each its own raylet, all on 127.0.0.1 with
# token auth. Stopping it stops exactly these processes.
#
#   source cluster/local_cluster.sh
#   raymm_cluster_start 2 2          # 2 worker nodes with 2 logical CPUs each (the head gets 0 CPUs,
#                                    # so training really runs on the worker nodes)
#   ray job submit --working-dir . -- python jobs/train_promptmm.py train.num_workers=2
#   raymm_cluster_stop
#
# Checkpoints and MLflow: every node here shares this machine's disk, so output.dir (local path)
# works; on a real multi-node cluster it must be shared storage (NFS, s3://...); see the README.

source "$(dirname "${BASH_SOURCE[0]}")/local_head.sh"

RAYMM_WORKER_PIDS=()

raymm_cluster_start() {
  local workers=${1:-2} cpus=${2:-2}
  raymm_head_start 0 || return 1
  local i
  for i in $(seq 1 "$workers"); do
    read -r nm om rtenv agent agent_grpc metrics < <(python "$RAYMM_ROOT/scripts/free_ports.py" 6)
    ray start --address "$RAYMM_GCS_ADDRESS" --block --node-ip-address 127.0.0.1 --num-cpus "$cpus" \
      --node-manager-port "$nm" --object-manager-port "$om" --runtime-env-agent-port "$rtenv" \
      --dashboard-agent-listen-port "$agent" --dashboard-agent-grpc-port "$agent_grpc" \
      --metrics-export-port "$metrics" --temp-dir "$RAYMM_HEAD_TMP" --disable-usage-stats \
      >"$RAYMM_HEAD_TMP/ray_worker_$i.log" 2>&1 &
    RAYMM_WORKER_PIDS+=($!)
  done
  local want=$((workers + 1))
  for _ in $(seq 1 120); do
    local alive
    alive=$(python - 2>/dev/null <<PY | tail -n 1
import ray
ray.init(address="$RAYMM_GCS_ADDRESS", logging_level="ERROR", log_to_driver=False)
print(sum(n["Alive"] for n in ray.nodes()))
PY
    )
    if [ "${alive:-0}" -ge "$want" ]; then
      echo "[raymm] local cluster up: head + $workers worker nodes ($cpus CPUs each), jobs at $RAY_ADDRESS"
      return 0
    fi
    sleep 1
  done
  echo "worker nodes did not join within 120 s; their logs:" >&2
  tail -n 20 "$RAYMM_HEAD_TMP"/ray_worker_*.log >&2
  raymm_cluster_stop
  return 1
}

raymm_cluster_stop() {
  local pid
  for pid in "${RAYMM_WORKER_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${RAYMM_WORKER_PIDS[@]}"; do
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  done
  RAYMM_WORKER_PIDS=()
  raymm_head_stop
}
