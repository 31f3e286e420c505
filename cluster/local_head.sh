#!/usr/bin/env bash
# Start a single-node Ray head for this project on 127.0.0.1 with token auth, on free ports, in the
# foreground-managed mode (`ray start --block`) so that stopping it stops exactly this cluster.
#
#   source cluster/local_head.sh        # defines raymm_head_start / raymm_head_stop
#   raymm_head_start 4                  # logical CPUs; sets RAY_ADDRESS (dashboard / job server URL)
#   raymm_job_submit -- python jobs/train_promptmm.py   # or: ray job submit --working-dir . -- ...
#   raymm_head_stop [exit-status]       # a nonzero status keeps the head's logs
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
  echo "ray head did not answer within 120 s" >&2
  raymm_head_stop 1
  return 1
}

raymm_job_submit() {
  # Submit `-- command ...` to the head's job server and stream its logs; the exit status is the
  # job's (0 when it SUCCEEDED). A job server that drops the connection while it is still starting
  # is retried (5 tries); a fixed submission id makes a retry after a dropped reply attach to the
  # job that was created instead of starting a second one.
  local sid="raymm-$(date +%Y%m%d-%H%M%S)-$$-$RANDOM" out try
  out=$(mktemp)
  for try in 1 2 3 4 5; do
    if ray job submit --address "$RAY_ADDRESS" --submission-id "$sid" --no-wait --working-dir . "$@" >"$out" 2>&1 \
       || grep -q "already exists" "$out"; then
      break
    fi
    if [ "$try" -lt 5 ] && grep -qE "ConnectionError|Connection aborted|RemoteDisconnected|Connection refused|Connection reset" "$out"; then
      echo "[raymm] job server not ready (try $try: $(grep -m1 -oE "(ConnectionError|RemoteDisconnected|Connection [a-z]+)[^,]*" "$out")); retrying" >&2
      sleep $((2 * try))
      continue
    fi
    cat "$out" >&2; rm -f "$out"; return 1
  done
  rm -f "$out"
  echo "[raymm] submitted job $sid"
  ray job logs --address "$RAY_ADDRESS" --follow "$sid" || true
  local status=""
  for _ in $(seq 1 60); do  # the log stream can end a moment before the job's final status is recorded
    status=$(ray job status --address "$RAY_ADDRESS" "$sid" 2>&1 | grep -oE "Job '$sid' (succeeded|failed|was stopped)" \
             | grep -oE "succeeded|failed|stopped" | tail -1 | tr '[:lower:]' '[:upper:]' || true)
    case "$status" in SUCCEEDED|FAILED|STOPPED) break ;; esac
    sleep 1
  done
  echo "[raymm] job $sid: ${status:-status unknown}"
  [ "$status" = SUCCEEDED ]
}

raymm_head_stop() {
  # SIGTERM to `ray start --block` makes it terminate the processes it started, and only those.
  # With a nonzero argument (the script's exit status) the head's logs are kept and their place printed.
  local rc=${1:-0}
  if [ -n "${RAYMM_HEAD_PID:-}" ] && kill -0 "$RAYMM_HEAD_PID" 2>/dev/null; then
    kill -TERM "$RAYMM_HEAD_PID"
    for _ in $(seq 1 60); do kill -0 "$RAYMM_HEAD_PID" 2>/dev/null || break; sleep 1; done
    echo "[raymm] Ray head (pid $RAYMM_HEAD_PID) stopped"
  fi
  if [ -n "${RAYMM_HEAD_TMP:-}" ] && [ -d "$RAYMM_HEAD_TMP" ]; then
    if [ "$rc" -ne 0 ]; then
      echo "[raymm] failed (exit $rc): the Ray head's logs are kept in $RAYMM_HEAD_TMP (session_latest/logs, ray_start.log)" >&2
    else
      rm -rf "$RAYMM_HEAD_TMP"
    fi
  fi
  unset RAYMM_HEAD_PID RAYMM_HEAD_TMP RAYMM_GCS_ADDRESS
}
