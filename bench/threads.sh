#!/usr/bin/env bash
# CPU and context switches per acknowledged write, per thread of each node
# of a three-node durable cluster, at one and at 64 connections (see
# bench/threads.py). Not run by CI. Stops by itself and stops every process
# it started.
#
#   bench/threads.sh                          # 1 and 64 connections, 5 s each
#   LEVELS="1 16 64 128" DURATION=4s bench/threads.sh
#
# Ports: BENCH_BASE_PORT (4900..4902), BENCH_CLUSTER_PORT (8900..8902).
# Result: bench/results/<UTC stamp>-threads.md (oha JSON and the cluster's
# log in <stamp>-threads/).
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/cluster_py.sh
run_cluster_py threads
