#!/usr/bin/env bash
# Resident memory per small session, per node of a three-node durable
# cluster and for the standalone MemoryStore (see bench/memory.py). Not run
# by CI. Stops by itself and stops every process it started.
#
#   bench/memory.sh                    # 200,000 sessions
#   SESSIONS=20000 bench/memory.sh     # a quick look
#
# Ports: BENCH_BASE_PORT (4800..4802, standalone +10), BENCH_CLUSTER_PORT
# (8800..8802). Result: bench/results/<UTC stamp>-memory.md (oha JSON and
# the cluster's log in <stamp>-memory/).
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/cluster_py.sh
run_cluster_py memory
