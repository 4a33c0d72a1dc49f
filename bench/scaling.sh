#!/usr/bin/env bash
# Replication cost per write, one mesh of three nodes versus two meshes of
# three (docs/scaling.md). Not run by CI; bounded (under a minute per run, four
# runs); stops by itself and stops every process it started.
#
# For each configuration, twice, in this one invocation: starts
# `demo-app cluster --meshes M --nodes-per-mesh 3` (durable storage, loopback),
# creates $SESSIONS sessions per mesh on that mesh's nodes, then drives POST
# /api/counter with wrk (one wrk per node, each given only cookies of the
# node's own mesh, as a sticky balancer would route them) in these phases:
#   idle  no load for $IDLE s (background CPU of heartbeats etc.)
#   sat   closed loop, $CONNECTIONS connections in all, spread over all nodes
#         (same total load for both configurations)
#   rate  paced, about $RATE writes/s per mesh (same offered load per mesh)
#   cross (2 meshes) m1's sessions at the same pace sent to m2's nodes:
#         every write is forwarded across meshes
# Per node and phase: CPU time (utime+stime from /proc/<pid>/stat), and log
# bytes appended (session_raft_log_bytes_appended_total on /metrics).
#
#   bench/scaling.sh
#   DURATION=10 RATE=200 bench/scaling.sh
#   PER_MESH=5 CONFIGS=1 bench/scaling.sh    # one group of five instead
#
# Results: bench/results/scaling-<UTC timestamp>.md (and raw wrk output).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p demo-app
export BIN=${CARGO_TARGET_DIR:-target}/release/demo-app
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
export OUT_DIR=bench/results/scaling-$STAMP
export OUT_MD=bench/results/scaling-$STAMP.md
mkdir -p "$OUT_DIR"
exec python3 bench/scaling.py
