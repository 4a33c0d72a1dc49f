#!/usr/bin/env bash
# Cost of one acknowledged write per node of a three-node durable cluster,
# requests sent through a follower. Not run by CI.
#
# Starts `demo-app cluster` (each node its own OS process, durable storage in
# a temporary directory, loopback), makes one session, then drives
# POST /api/counter (MODE=get: GET) through a follower with oha for $DURATION
# at $CONNECTIONS connections with that session's cookie. Per node process it
# reads utime+stime (/proc/<pid>/stat), write_bytes and wchar (/proc/<pid>/io)
# and the encoded log bytes appended (/metrics) before and after the run, and
# divides by the acknowledged (2xx) requests of oha's status code
# distribution: per node, its role (leader / follower taking requests / other
# follower), CPU µs per write, disk and wchar bytes per write, and the group's
# total CPU µs per write; also the encoded size of one log entry. See
# bench/per_write.py for the details.
#
#   bench/per_write.sh                     # POST, 8 s, 64 connections
#   MODE=get DURATION=5s bench/per_write.sh
#   CONNECTIONS=16 IDLE=0 bench/per_write.sh
#
# Ports: BENCH_BASE_PORT (4500..4502), BENCH_CLUSTER_PORT (8500..8502).
# Result: bench/results/<UTC stamp>-per-write.md (a Markdown table; raw oha
# JSON and the cluster's log beside it in <stamp>-per-write/). Stops by itself
# and stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/cluster_py.sh
run_cluster_py per_write
