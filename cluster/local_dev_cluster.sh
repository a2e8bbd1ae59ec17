#!/usr/bin/env bash
# A dev "cluster" on one machine, its front doors bound to 127.0.0.1:
#   - Ray head          dashboard / job API http://127.0.0.1:8265, GCS port 6379
#   - MLflow server     http://127.0.0.1:5000 (SQLite store, proxied artifacts)
#   - moto S3 server    http://127.0.0.1:5555, with bucket s3://dgn-dev
# (Ray 2.60 itself swaps a loopback --node-ip-address for the machine's own
# address, and its internal gRPC ports listen on all interfaces; nothing here
# can change that, so run this only on a machine you trust the network of.)
#
# Usage:
#   bash cluster/local_dev_cluster.sh up [--num-cpus N] [--dir DIR] [--artifacts local|s3]
#   source "$DIR/env.sh"                      # RAY_ADDRESS, MLFLOW_TRACKING_URI, AWS_*
#   python flows/prepare_data.py --out s3://dgn-dev/data
#   ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- \
#       python flows/train.py --data s3://dgn-dev/data --storage s3://dgn-dev/checkpoints
#   bash cluster/local_dev_cluster.sh status
#   bash cluster/local_dev_cluster.sh down
#
# DIR (default $DGN_DEV_CLUSTER_DIR or ~/.dgn/dev-cluster) holds the pid files,
# logs, env.sh, the MLflow database and (with --artifacts local, the default)
# its artifacts, so runs survive `down` / `up`. moto keeps S3 in memory: what
# was written to s3://dgn-dev is gone after `down`.
set -euo pipefail

HOST=127.0.0.1
RAY_PORT=${DGN_DEV_RAY_PORT:-6379}
DASHBOARD_PORT=${DGN_DEV_DASHBOARD_PORT:-8265}
MLFLOW_PORT=${DGN_DEV_MLFLOW_PORT:-5000}
MOTO_PORT=${DGN_DEV_MOTO_PORT:-5555}
BUCKET=${DGN_DEV_BUCKET:-dgn-dev}
# Ray's session files live here rather than in /tmp/ray, so that a plain
# `ray.init()` elsewhere on this machine does not attach to this cluster.
RAY_TEMP_DIR=${DGN_DEV_RAY_TEMP_DIR:-/tmp/dgn-dev-ray-$(id -u)}

DIR=${DGN_DEV_CLUSTER_DIR:-$HOME/.dgn/dev-cluster}
NUM_CPUS=""
ARTIFACTS=local

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "${1:-0}"
}

die() { echo "local_dev_cluster: $*" >&2; exit 1; }
log() { echo "[dev-cluster] $*"; }

cmd=${1:-}
[ -n "$cmd" ] || usage 2
shift
while [ $# -gt 0 ]; do
    case "$1" in
        --num-cpus) NUM_CPUS=${2:?--num-cpus needs a number}; shift 2 ;;
        --dir) DIR=${2:?--dir needs a path}; shift 2 ;;
        --artifacts) ARTIFACTS=${2:?--artifacts needs local or s3}; shift 2 ;;
        -h|--help) usage 0 ;;
        *) die "unknown option '$1' (valid: --num-cpus N, --dir DIR, --artifacts local|s3)" ;;
    esac
done
case "$ARTIFACTS" in local|s3) ;; *) die "--artifacts must be 'local' or 's3', got '$ARTIFACTS'" ;; esac
[ -n "$NUM_CPUS" ] || NUM_CPUS=$(nproc)
PYTHON=${PYTHON:-python3}

# helpers ---------------------------------------------------------------------

pid_alive() {  # pid_alive NAME -> 0 if NAME's pid file names a live (non-zombie) process
    local f="$DIR/$1.pid" stat
    [ -f "$f" ] || return 1
    stat=$(ps -o stat= -p "$(cat "$f")" 2>/dev/null) || return 1
    [ -n "$stat" ] && [[ "$stat" != Z* ]]
}

port_open() {  # port_open PORT
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

wait_for_port() {  # wait_for_port NAME PORT SECONDS
    local name=$1 port=$2 secs=$3 i
    for ((i = 0; i < secs * 2; i++)); do
        port_open "$port" && return 0
        if ! pid_alive "$name"; then
            echo "--- tail of $DIR/$name.log ---" >&2
            tail -n 30 "$DIR/$name.log" >&2 || true
            die "$name exited before opening $HOST:$port"
        fi
        sleep 0.5
    done
    tail -n 30 "$DIR/$name.log" >&2 || true
    die "$name did not open $HOST:$port within ${secs}s (log: $DIR/$name.log)"
}

start_bg() {  # start_bg NAME CMD... : own session (so `down` can stop the whole group), pid file, log
    local name=$1; shift
    setsid nohup "$@" >"$DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$DIR/$name.pid"
}

group_alive() {  # group_alive PGID -> 0 while a live (non-zombie) process is in the group
    ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

wait_group_gone() {  # wait_group_gone PGID SECONDS
    local i
    for ((i = 0; i < $2 * 2; i++)); do
        group_alive "$1" || return 0
        sleep 0.5
    done
    return 1
}

stop_bg() {  # stop_bg NAME : SIGTERM the leader, then its group, then SIGKILL
    local name=$1 f="$DIR/$1.pid" pid
    if [ ! -f "$f" ]; then
        log "$name: not running (no pid file)"
        return 0
    fi
    pid=$(cat "$f")
    if group_alive "$pid"; then
        log "$name: stopping (pid $pid)"
        # The leader first: `ray start --block` drains the node (up to 30 s
        # while work runs) and stops its own processes in order.
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_group_gone "$pid" 40; then
            kill -TERM -- "-$pid" 2>/dev/null || true
            if ! wait_group_gone "$pid" 10; then
                log "$name: still running, sending SIGKILL"
                kill -KILL -- "-$pid" 2>/dev/null || true
                wait_group_gone "$pid" 5 || log "$name: some processes of group $pid survived SIGKILL"
            fi
        fi
    else
        log "$name: not running (stale pid file)"
    fi
    rm -f "$f"
}

http_ok() {  # http_ok URL -> 0 on a 2xx answer; sends Ray's auth token (RAY_AUTH_TOKEN or ~/.ray/auth_token) if any
    "$PYTHON" - "$1" 2>/dev/null <<'EOF'
import os, pathlib, sys, urllib.request

token = os.environ.get("RAY_AUTH_TOKEN") or ""
path = pathlib.Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or pathlib.Path.home() / ".ray" / "auth_token")
if not token and path.is_file():
    token = path.read_text().strip()
headers = {"Authorization": f"Bearer {token}"} if token else {}
urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers=headers), timeout=20)
EOF
}

port_in_use_by_other() {  # port_in_use_by_other NAME PORT
    ! pid_alive "$1" && port_open "$2"
}

service_env() {  # the settings every service and every Ray job inherits
    cat <<EOF
export MLFLOW_TRACKING_URI=http://$HOST:$MLFLOW_PORT
export AWS_ENDPOINT_URL=http://$HOST:$MOTO_PORT
export MLFLOW_S3_ENDPOINT_URL=http://$HOST:$MOTO_PORT
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
export DGN_STORAGE=s3://$BUCKET/dgn
EOF
}

write_env() {  # write_env GCS_ADDRESS
    {
        cat <<'EOF'
# Written by cluster/local_dev_cluster.sh; source it to use the dev cluster.
# `ray job submit` / `ray job list` talk to the job API: RAY_API_SERVER_ADDRESS
# wins over RAY_ADDRESS there. A plain `python flows/train.py` attaches to the
# cluster through RAY_ADDRESS, which ray.init() needs as a GCS address.
EOF
        echo "export RAY_API_SERVER_ADDRESS=http://$HOST:$DASHBOARD_PORT"
        echo "export RAY_ADDRESS=$1"
        service_env
    } >"$DIR/env.sh"
}

# subcommands -----------------------------------------------------------------

up() {
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    # Everything started below (Ray's drivers and workers included) inherits
    # these, so jobs reach moto S3 and the MLflow server.
    unset RAY_ADDRESS RAY_API_SERVER_ADDRESS
    eval "$(service_env)"

    # moto S3 ------------------------------------------------------------------
    if pid_alive moto; then
        log "moto: already running (pid $(cat "$DIR/moto.pid"))"
    else
        port_in_use_by_other moto "$MOTO_PORT" && die "$HOST:$MOTO_PORT is taken by another process"
        log "moto: starting S3 on http://$HOST:$MOTO_PORT"
        start_bg moto "$PYTHON" -m moto.server -H "$HOST" -p "$MOTO_PORT"
        wait_for_port moto "$MOTO_PORT" 60
    fi
    "$PYTHON" - "$BUCKET" <<'EOF'
import sys

import boto3

bucket = sys.argv[1]
s3 = boto3.client("s3")  # endpoint and credentials from env.sh
if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
    s3.create_bucket(Bucket=bucket)
print(f"[dev-cluster] moto: bucket s3://{bucket} ready")
EOF

    # MLflow -------------------------------------------------------------------
    if pid_alive mlflow; then
        log "mlflow: already running (pid $(cat "$DIR/mlflow.pid"))"
    else
        port_in_use_by_other mlflow "$MLFLOW_PORT" && die "$HOST:$MLFLOW_PORT is taken by another process"
        local dest="$DIR/mlartifacts"
        [ "$ARTIFACTS" = s3 ] && dest="s3://$BUCKET/mlflow-artifacts"
        log "mlflow: starting on http://$HOST:$MLFLOW_PORT (store $DIR/mlflow.db, artifacts $dest)"
        # No job-execution workers (GenAI features): six extra processes we never use.
        start_bg mlflow env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
            mlflow server --host "$HOST" --port "$MLFLOW_PORT" --workers 1 \
            --backend-store-uri "sqlite:///$DIR/mlflow.db" \
            --artifacts-destination "$dest"
        wait_for_port mlflow "$MLFLOW_PORT" 120
    fi

    # Ray head -----------------------------------------------------------------
    if pid_alive ray; then
        log "ray: already running (pid $(cat "$DIR/ray.pid"))"
    else
        port_in_use_by_other ray "$RAY_PORT" && die "$HOST:$RAY_PORT is taken by another process"
        log "ray: starting head on $HOST:$RAY_PORT, dashboard http://$HOST:$DASHBOARD_PORT, $NUM_CPUS CPU(s)"
        # --block keeps `ray start` in the foreground of its own session, so the
        # pid file names it and `down` stops exactly this cluster (no `ray stop`,
        # which would stop every Ray on the machine).
        start_bg ray ray start --head --block \
            --node-ip-address "$HOST" --port "$RAY_PORT" \
            --dashboard-host "$HOST" --dashboard-port "$DASHBOARD_PORT" \
            --num-cpus "$NUM_CPUS" --num-gpus 0 \
            --temp-dir "$RAY_TEMP_DIR" --disable-usage-stats
        wait_for_port ray "$RAY_PORT" 120
        wait_for_port ray "$DASHBOARD_PORT" 120
    fi
    # Ray swaps a loopback --node-ip-address for this machine's own address;
    # the address it chose is what ray.init() must be given.
    local gcs
    gcs=$(cat "$RAY_TEMP_DIR/ray_current_cluster" 2>/dev/null || echo "$HOST:$RAY_PORT")
    write_env "$gcs"

    log "up. Use it with:  source $DIR/env.sh"
}

down() {
    [ -d "$DIR" ] || { log "nothing to stop ($DIR does not exist)"; return 0; }
    stop_bg ray
    stop_bg mlflow
    stop_bg moto
    log "down."
}

status() {
    local rc=0 name port
    for name in moto mlflow ray; do
        case $name in
            moto) port=$MOTO_PORT ;;
            mlflow) port=$MLFLOW_PORT ;;
            ray) port=$DASHBOARD_PORT ;;
        esac
        if pid_alive "$name"; then
            if port_open "$port"; then
                log "$name: running (pid $(cat "$DIR/$name.pid")), $HOST:$port open"
            else
                log "$name: process up (pid $(cat "$DIR/$name.pid")) but $HOST:$port closed"
                rc=1
            fi
        else
            log "$name: stopped"
            rc=1
        fi
    done
    if [ "$rc" -eq 0 ]; then
        http_ok "http://$HOST:$MLFLOW_PORT/health" && log "mlflow: /health OK" || rc=1
        http_ok "http://$HOST:$DASHBOARD_PORT/api/version" && log "ray: job API OK" || rc=1
        http_ok "http://$HOST:$MOTO_PORT/$BUCKET" && log "moto: bucket s3://$BUCKET OK" || rc=1
        local res
        res=$(ray status --address "$HOST:$RAY_PORT" 2>/dev/null | sed -n '/Resources/,$p') || true
        if [ -n "$res" ]; then echo "$res"; else log "ray: no resource report yet (just started?)"; fi
        log "env file: $DIR/env.sh"
    fi
    return "$rc"
}

case "$cmd" in
    up) up ;;
    down) down ;;
    status) status ;;
    -h|--help|help) usage 0 ;;
    *) die "unknown command '$cmd' (valid: up, down, status)" ;;
esac
