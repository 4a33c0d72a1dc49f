#!/usr/bin/env bash
# Many-sessions load run: $SESSIONS sessions (default 10,000) on a three-node
# cluster, driven by wrk with a Lua script that gives each request the next
# session's cookie (oha sends one fixed cookie). Reads on a follower, then
# writes through a follower. Not run by CI; stops by itself.
#
#   bench/many_sessions.sh
#   SESSIONS=50000 DURATION=20s bench/many_sessions.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SESSIONS=${SESSIONS:-10000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
BASE=${BENCH_BASE_PORT:-3950}
CLUSTER_BASE=${BENCH_CLUSTER_PORT:-7950}
OUT=bench/results/many-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p demo-app
BIN=${CARGO_TARGET_DIR:-target}/release/demo-app
WORK=$(mktemp -d)
"$BIN" cluster --base-port "$BASE" --base-cluster-port "$CLUSTER_BASE" \
  --data-dir "$WORK/cluster" --log warn > "$OUT/cluster.log" 2>&1 &
CLUSTER=$!
trap 'kill $CLUSTER 2>/dev/null; wait $CLUSTER 2>/dev/null; rm -rf "$WORK"' EXIT
for i in 0 1 2; do
  for _ in $(seq 1 150); do curl -fsS -o /dev/null "http://127.0.0.1:$((BASE + i))/readyz" 2>/dev/null && break; sleep 0.2; done
done
LEADER=$(curl -fsS "http://127.0.0.1:$BASE/cluster/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_id"])')
FOLLOWER_URL="http://127.0.0.1:$((BASE + LEADER % 3))"

python3 bench/make_sessions.py "$FOLLOWER_URL" "$SESSIONS" "$WORK/get.lua" GET
sed 's/wrk.method = "GET"/wrk.method = "POST"/' "$WORK/get.lua" > "$WORK/post.lua"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; $SESSIONS sessions; wrk $CONNECTIONS connections, $DURATION"
  echo "| run | req/s | p50 ms | p99 ms | non-2xx | socket errors |"
  echo "|---|---:|---:|---:|---:|---:|"
  for kind in get post; do
    wrk -t2 -c "$CONNECTIONS" -d "$DURATION" -s "$WORK/$kind.lua" "$FOLLOWER_URL" > "$OUT/$kind.txt"
    python3 bench/wrk_row.py "$kind on follower" < "$OUT/$kind.txt"
  done
} | tee "$OUT/table.md"
