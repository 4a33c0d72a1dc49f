#!/usr/bin/env bash
# Load benchmark of the demo app with oha. Not run by CI.
#
# Starts, one after another: the same handlers with no session layer (the
# ceiling), `standalone` (MemoryStore), and a three-node cluster with durable
# storage; drives each with oha at $CONNECTIONS connections for $DURATION and
# one session cookie; prints requests/s, p50 and p99, each as a ratio to the
# ceiling from this same run; keeps raw results under bench/results/.
#
#   bench/run.sh                    # 10 s per run, 64 connections
#   DURATION=30s bench/run.sh
#
# Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
BASE=${BENCH_BASE_PORT:-3900}
CLUSTER_BASE=${BENCH_CLUSTER_PORT:-7900}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/results/$STAMP
mkdir -p "$OUT"

if ! command -v oha >/dev/null; then
  # native-tls keeps the build light (rustls pulls in aws-lc-sys); we only
  # talk plain HTTP to 127.0.0.1 anyway.
  dpkg -s libssl-dev pkg-config >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config; }
  cargo install oha --locked --no-default-features --features native-tls
fi
cargo build --release -p demo-app
BIN=${CARGO_TARGET_DIR:-target}/release/demo-app
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() { # url
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "timed out waiting for $1" >&2; return 1
}

# A session cookie from one POST (the session is created with counter 1).
make_cookie() { # base-url
  curl -fsS -o /dev/null -D - -X POST "$1/api/counter" \
    | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | head -n1
}

load() { # name method url [cookie]
  local name=$1 method=$2 url=$3 cookie=${4:-}
  local args=(-z "$DURATION" -c "$CONNECTIONS" -m "$method" --no-tui --output-format json)
  [ -n "$cookie" ] && args+=(-H "Cookie: $cookie")
  echo "== $name: $method $url" >&2
  oha "${args[@]}" "$url" > "$OUT/$name.json"
}

stop_all() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

# 1. Ceiling: same routes, no session layer.
"$BIN" ceiling --listen "127.0.0.1:$BASE" --log warn & PIDS+=($!)
wait_http "http://127.0.0.1:$BASE/healthz"
load ceiling_get GET "http://127.0.0.1:$BASE/api/counter"
load ceiling_post POST "http://127.0.0.1:$BASE/api/counter"
stop_all

# 2. Standalone: MemoryStore.
"$BIN" standalone --listen "127.0.0.1:$((BASE + 1))" --insecure-cookies --log warn & PIDS+=($!)
wait_http "http://127.0.0.1:$((BASE + 1))/healthz"
COOKIE=$(make_cookie "http://127.0.0.1:$((BASE + 1))")
load standalone_get GET "http://127.0.0.1:$((BASE + 1))/api/counter" "$COOKIE"
load standalone_post POST "http://127.0.0.1:$((BASE + 1))/api/counter" "$COOKIE"
stop_all

# 3. Three-node cluster, durable storage (fsync'd log) in a temporary directory.
"$BIN" cluster --base-port "$((BASE + 10))" --base-cluster-port "$CLUSTER_BASE" \
  --data-dir "$WORK/cluster" --log warn > "$OUT/cluster.log" 2>&1 & PIDS+=($!)
for i in 0 1 2; do wait_http "http://127.0.0.1:$((BASE + 10 + i))/readyz"; done
LEADER=$(curl -fsS "http://127.0.0.1:$((BASE + 10))/cluster/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_id"])')
FOLLOWER=$(( LEADER % 3 + 1 ))
LEADER_URL="http://127.0.0.1:$((BASE + 9 + LEADER))"
FOLLOWER_URL="http://127.0.0.1:$((BASE + 9 + FOLLOWER))"
echo "leader: node-$LEADER, follower used: node-$FOLLOWER" >&2
COOKIE=$(make_cookie "$FOLLOWER_URL")
load cluster_get_follower GET "$FOLLOWER_URL/api/counter" "$COOKIE"
load cluster_post_follower POST "$FOLLOWER_URL/api/counter" "$COOKIE"
load cluster_post_leader POST "$LEADER_URL/api/counter" "$COOKIE"
stop_all

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "oha: $(oha --version); $CONNECTIONS connections, $DURATION per run, one session cookie"
  python3 bench/table.py "$OUT"
} | tee "$OUT/table.md"
