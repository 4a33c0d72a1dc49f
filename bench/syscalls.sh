#!/usr/bin/env bash
# System calls by kind (futex, epoll_wait, write, writev, recvfrom,
# fdatasync) and context switches per acknowledged request, per node of a
# three-node durable cluster, requests through a follower (see
# bench/syscalls.py). Counts, unlike CPU time, hardly move with the shared
# machine's speed. Needs perf with tracepoint access (Debian's linux-perf,
# installed with apt-get when missing). Not run by CI; stops by itself and
# stops every process it started.
#
#   bench/syscalls.sh                      # POST, 8 s, 64 connections
#   MODE=get DURATION=5s bench/syscalls.sh
#
# Ports: BENCH_BASE_PORT (4950..4952), BENCH_CLUSTER_PORT (8950..8952).
# Result: bench/results/<UTC stamp>-syscalls.md (perf's CSV per node, oha's
# JSON and the cluster's log in <stamp>-syscalls/).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v perf >/dev/null 2>&1; then
  echo "== apt-get install linux-perf"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf
fi
source bench/cluster_py.sh
run_cluster_py syscalls
