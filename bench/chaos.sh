#!/usr/bin/env bash
# Long chaos run: the same test as CI (demo-app/tests/chaos.rs), built in
# release mode, with more sessions and a longer load: rounds of SIGKILL of
# the leader and of a follower, SIGSTOP/SIGCONT, and a node cut off and
# healed, while every session counts its acknowledged and unknown increments;
# then every counter is read back. Not run by CI; stops by itself.
#
#   bench/chaos.sh                       # 10 minutes, 1000 sessions
#   CHAOS_SECS=120 CHAOS_SESSIONS=300 bench/chaos.sh
#
# The summary line and the fault log go to bench/results/chaos-<UTC>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

export CHAOS_SECS=${CHAOS_SECS:-600}
export CHAOS_SESSIONS=${CHAOS_SESSIONS:-1000}
mkdir -p bench/results
OUT=bench/results/chaos-$(date -u +%Y%m%dT%H%M%SZ).txt
export CHAOS_SUMMARY_FILE="$PWD/$OUT"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; release build"
  echo "CHAOS_SECS=$CHAOS_SECS CHAOS_SESSIONS=$CHAOS_SESSIONS"
} > "$OUT"

cargo test --release -p demo-app --test chaos --no-run
# The test's exit status is the script's: a lost or stale write fails it.
# Its whole output (on failure: the problems and node log tails) goes next
# to the summary.
set +e
cargo test --release -p demo-app --test chaos -- --nocapture 2>&1 | tee "${OUT%.txt}.log"
status=${PIPESTATUS[0]}
set -e
echo "results: $OUT (full output: ${OUT%.txt}.log)"
cat "$OUT"
exit "$status"
