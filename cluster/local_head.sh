#!/usr/bin/env bash
# Start a single-node Ray head for this project on 127.0.0.1 with token auth, on free ports, in the
# foreground-managed mode (`ray start --block`) so that stopping it stops exactly this cluster.
#
#   source cluster/local_head.sh        # defines raymm_head_start / raymm_head_stop
#   raymm_head_start 4                  # logical CPUs; sets RAY_ADDRESS (dashboard / job server URL)
#   ray job submit --working-dir . -- python jobs/train_promptmm.py
#   raymm_head_stop
#
# The token lives in .ray_auth_token (git-ignored, mode 600); every ray command needs
# RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH, which raymm_head_start exports.

RAYMM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

raymm_head_start() {
  local cpus=${1:-4}
  local root=$RAYMM_ROOT
  export RAY_AUTH_MODE=token
  export RAY_AUTH_TOKEN_PATH="$root/.ray_auth_token"
  if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
    (umask 077; python -c 'import secrets; print(secrets.token_hex(32))' > "$RAY_AUTH_TOKEN_PATH")
  fi
  read -r gcs dash client agent agent_grpc rtenv metrics nm om < <(python "$root/scripts/free_ports.py" 9)
  RAYMM_HEAD_TMP=$(mktemp -d /tmp/raymm-ray-XXXXXX)
  RAYMM_HEAD_LOG="$RAYMM_HEAD_TMP/ray_start.log"
  ray start --head --block --node-ip-address 127.0.0.1 --port "$gcs" \
    --dashboard-host 127.0.0.1 --dashboard-port "$dash" --include-dashboard true \
    --ray-client-server-port "$client" --dashboard-agent-listen-port "$agent" \
    --dashboard-agent-grpc-port "$agent_grpc" --runtime-env-agent-port "$rtenv" \
    --metrics-export-port "$metrics" --node-manager-port "$nm" --object-manager-port "$om" \
    --num-cpus "$cpus" --temp-dir "$RAYMM_HEAD_TMP" --disable-usage-stats >"$RAYMM_HEAD_LOG" 2>&1 &
  RAYMM_HEAD_PID=$!
  export RAY_ADDRESS="http://127.0.0.1:$dash"
  export RAYMM_GCS_ADDRESS="127.0.0.1:$gcs"  # what worker nodes join (cluster/local_cluster.sh)
  for _ in $(seq 1 120); do
    if ! kill -0 "$RAYMM_HEAD_PID" 2>/dev/null; then
      echo "ray head failed to start; log:" >&2; cat "$RAYMM_HEAD_LOG" >&2; return 1
    fi
    if ray job list --address "$RAY_ADDRESS" >/dev/null 2>&1; then
      echo "[raymm] Ray head up: dashboard and job server $RAY_ADDRESS (pid $RAYMM_HEAD_PID, token auth)"
      return 0
    fi
    sleep 1
  done
  echo "ray head did not answer within 120 s; log: $RAYMM_HEAD_LOG" >&2
  raymm_head_stop
  return 1
}

raymm_head_stop() {
  # SIGTERM to `ray start --block` makes it terminate the processes it started, and only those.
  if [ -n "${RAYMM_HEAD_PID:-}" ] && kill -0 "$RAYMM_HEAD_PID" 2>/dev/null; then
    kill -TERM "$RAYMM_HEAD_PID"
    for _ in $(seq 1 60); do kill -0 "$RAYMM_HEAD_PID" 2>/dev/null || break; sleep 1; done
    echo "[raymm] Ray head (pid $RAYMM_HEAD_PID) stopped"
  fi
  if [ -n "${RAYMM_HEAD_TMP:-}" ] && [ -d "$RAYMM_HEAD_TMP" ]; then rm -rf "$RAYMM_HEAD_TMP"; fi
  unset RAYMM_HEAD_PID RAYMM_HEAD_TMP RAYMM_GCS_ADDRESS
}
