#!/usr/bin/env bash
# Load benchmark of the demo app with oha, against the usual alternative.
# Not run by CI.
#
# Row groups (run in this order; choose some with ROWS):
#   ceiling     the demo's handlers with no session layer (`demo-app ceiling`)
#   standalone  `demo-app standalone` (MemoryStore)
#   cluster     three-node `demo-app cluster`, durable storage (fsync'd log);
#               GET on a follower, POST through a follower and on the leader
#   peer        the peer (bench/peer): the same handlers on tower-sessions 0.14
#               + tower-sessions-redis-store, against a local redis-server with
#               `appendonly yes, appendfsync always` (every write fsync'd, as
#               ours are); also the peer's own ceiling (`peer --ceiling`)
# Each run: oha at $CONNECTIONS connections for $DURATION, one session cookie
# (made by one POST first). The table (bench/table.py) gives requests/s, p50
# and p99, each as a ratio to OUR ceiling from this same run; the peer's rows
# also as a ratio to the peer's own ceiling; and the cluster's POST rows as a
# ratio to the peer's POST (the issue's target: >= 1.5x tower-sessions + Redis).
#
#   bench/run.sh                          # all rows, 10 s per run, 64 connections
#   DURATION=30s bench/run.sh
#   ROWS="ceiling cluster peer" bench/run.sh   # rerun part of the table
#
# redis-server comes from Debian's package (installed with apt-get when
# missing); if it cannot be installed or started, or the peer does not build,
# the peer rows say "skipped" and the rest goes on. Every process listens on
# 127.0.0.1 and is stopped on exit; every load run is bounded by $DURATION.
# Raw results, logs and checks (redis really holds the sessions, the counter
# goes up with one cookie): bench/results/<UTC stamp>/.
#
# Ports: BENCH_BASE_PORT (3900): ceiling +0, standalone +1, cluster +10..+12,
# peer ceiling +20, peer +21; BENCH_CLUSTER_PORT (7900): cluster Raft ports;
# BENCH_REDIS_PORT (BENCH_BASE_PORT + 30): redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
ROWS=${ROWS:-ceiling standalone cluster peer}
BASE=${BENCH_BASE_PORT:-3900}
CLUSTER_BASE=${BENCH_CLUSTER_PORT:-7900}
REDIS_PORT=${BENCH_REDIS_PORT:-$((BASE + 30))}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/results/$STAMP
mkdir -p "$OUT"

want() { [[ " $ROWS " == *" $1 "* ]]; }
for r in $ROWS; do
  case $r in ceiling|standalone|cluster|peer) ;; *) echo "unknown row group '$r' in ROWS" >&2; exit 2 ;; esac
done

source bench/oha.sh
BIN=${CARGO_TARGET_DIR:-target}/release/demo-app
if want ceiling || want standalone || want cluster; then
  cargo build --release -p demo-app
fi
WORK=$(mktemp -d)
PIDS=()
alive() { # pid: running, not a zombie
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]
}
# SIGTERM to every process this script started (and, for the cluster
# launcher, its node processes), SIGKILL to any still running after 20 s
# (the launcher gives each node 15 s to drain; a Redis that cannot write
# its files refuses to shut down).
stop_all() {
  local p i all=()
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    all+=("$p" $(pgrep -P "$p" 2>/dev/null || true))
    kill "$p" 2>/dev/null || true
  done
  for p in "${all[@]:-}"; do
    [ -n "$p" ] || continue
    for i in $(seq 1 200); do alive "$p" || break; sleep 0.1; done
    alive "$p" && { echo "pid $p still running after SIGTERM: SIGKILL" >&2; kill -9 "$p" 2>/dev/null || true; }
  done
  wait 2>/dev/null || true
  PIDS=()
}
cleanup() {
  stop_all
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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

# The session's counter as the app answers it.
count_of() { # base-url cookie
  curl -fsS -H "Cookie: $2" "$1/api/counter" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'
}

load() { # name method url [cookie]
  local name=$1 method=$2 url=$3 cookie=${4:-}
  local args=(-z "$DURATION" -c "$CONNECTIONS" -m "$method" --no-tui --output-format json)
  [ -n "$cookie" ] && args+=(-H "Cookie: $cookie")
  echo "== $name: $method $url" >&2
  oha "${args[@]}" "$url" > "$OUT/$name.json"
}

# What the table prints under itself: facts checked during the run.
check() { echo "$*" | tee -a "$OUT/checks.txt" >&2; }

# Marks the peer's rows as skipped, with the reason.
skip_peer() { echo "$*" > "$OUT/peer.skipped"; check "peer rows skipped: $*"; }

if want ceiling; then
  # Same routes, no session layer.
  "$BIN" ceiling --listen "127.0.0.1:$BASE" --log warn & PIDS+=($!)
  wait_http "http://127.0.0.1:$BASE/healthz"
  load ceiling_get GET "http://127.0.0.1:$BASE/api/counter"
  load ceiling_post POST "http://127.0.0.1:$BASE/api/counter"
  stop_all
fi

if want standalone; then
  URL="http://127.0.0.1:$((BASE + 1))"
  "$BIN" standalone --listen "127.0.0.1:$((BASE + 1))" --insecure-cookies --log warn & PIDS+=($!)
  wait_http "$URL/healthz"
  COOKIE=$(make_cookie "$URL")
  load standalone_get GET "$URL/api/counter" "$COOKIE"
  load standalone_post POST "$URL/api/counter" "$COOKIE"
  check "standalone: counter of the benchmark session after its runs: $(count_of "$URL" "$COOKIE")"
  stop_all
fi

if want cluster; then
  # Durable storage (fsync'd log) in a temporary directory.
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
  check "cluster: leader node-$LEADER, follower used node-$FOLLOWER; counter of the benchmark session after its runs: $(count_of "$FOLLOWER_URL" "$COOKIE")"
  stop_all
fi

if want peer; then
  PEER_URL="http://127.0.0.1:$((BASE + 21))"
  PEER_CEILING_URL="http://127.0.0.1:$((BASE + 20))"
  PEER_TARGET=${CARGO_TARGET_DIR:-bench/peer/target}
  PEER=$PEER_TARGET/release/peer
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    { apt-get update -qq && apt-get install -y -qq redis-server; } > "$OUT/redis-install.log" 2>&1 || true
  fi
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    skip_peer "redis-server could not be installed (see redis-install.log)"
  elif ! cargo build --release --manifest-path bench/peer/Cargo.toml --target-dir "$PEER_TARGET" > "$OUT/peer-build.log" 2>&1; then
    skip_peer "the peer did not build (see peer-build.log)"
  else
    # The peer's own ceiling: the same routes, no session layer, no Redis.
    "$PEER" --ceiling --listen "127.0.0.1:$((BASE + 20))" & PIDS+=($!)
    wait_http "$PEER_CEILING_URL/healthz"
    load peer_ceiling_get GET "$PEER_CEILING_URL/api/counter"
    load peer_ceiling_post POST "$PEER_CEILING_URL/api/counter"
    stop_all

    # Every write appended to the AOF and fsync'd before Redis answers; no
    # RDB snapshots; its files in a temporary directory.
    mkdir -p "$WORK/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
      --appendonly yes --appendfsync always --save '' --dir "$WORK/redis" \
      --daemonize no --logfile "$(pwd)/$OUT/redis.log" & PIDS+=($!)
    for _ in $(seq 1 50); do
      [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
      sleep 0.1
    done
    if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" != PONG ]; then
      skip_peer "redis-server did not start on port $REDIS_PORT (see redis.log)"
      stop_all
    else
      check "redis: $(redis-server --version | cut -d' ' -f1-3); appendonly $(redis-cli -p "$REDIS_PORT" config get appendonly | tail -n1), appendfsync $(redis-cli -p "$REDIS_PORT" config get appendfsync | tail -n1), save '$(redis-cli -p "$REDIS_PORT" config get save | tail -n1)'"
      "$PEER" --listen "127.0.0.1:$((BASE + 21))" --redis "redis://127.0.0.1:$REDIS_PORT" & PIDS+=($!)
      wait_http "$PEER_URL/healthz"
      COOKIE=$(make_cookie "$PEER_URL")
      # The session is in Redis and a POST with its cookie increments it.
      SECOND=$(curl -fsS -X POST -H "Cookie: $COOKIE" "$PEER_URL/api/counter" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
      check "peer: cookie ${COOKIE:0:12}...; keys in redis after the first POST: $(redis-cli -p "$REDIS_PORT" dbsize); second POST with the cookie answers count $SECOND (expected 2)"
      load peer_get GET "$PEER_URL/api/counter" "$COOKIE"
      load peer_post POST "$PEER_URL/api/counter" "$COOKIE"
      check "peer: counter of the benchmark session after its runs: $(count_of "$PEER_URL" "$COOKIE"); keys in redis: $(redis-cli -p "$REDIS_PORT" dbsize); AOF: $(du -b "$WORK/redis" | tail -n1 | cut -f1) bytes; redis aof_delayed_fsync $(redis-cli -p "$REDIS_PORT" info persistence | tr -d '\r' | sed -n 's/^aof_delayed_fsync://p')"
      stop_all
    fi
  fi
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "oha: $(oha --version); $CONNECTIONS connections, $DURATION per run, one session cookie; rows: $ROWS"
  python3 bench/table.py "$OUT"
  if [ -f "$OUT/checks.txt" ]; then echo; sed 's/^/- /' "$OUT/checks.txt"; fi
} | tee "$OUT/table.md"
