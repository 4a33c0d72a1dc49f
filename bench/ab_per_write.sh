#!/usr/bin/env bash
# Same-hour A/B of two demo-app binaries: bench/per_write.py run on each in
# turn, ROUNDS times (A, B, A, B, ...), so that both see the same state of a
# shared, noisy machine. Compare the pairs of one round with each other, not
# with figures from another hour. Not run by CI; stops by itself.
#
#   git stash; cargo build --release -p demo-app; cp target/release/demo-app /tmp/a
#   git stash pop; cargo build --release -p demo-app; cp target/release/demo-app /tmp/b
#   bench/ab_per_write.sh /tmp/a /tmp/b                # POST, 2 rounds of 8 s
#   MODE=get ROUNDS=3 bench/ab_per_write.sh /tmp/a /tmp/b
#
# Result: bench/results/<UTC stamp>-ab/{a,b}-<round>.md (per_write.py's
# tables) and a summary (requests/s and the group's CPU µs per request per
# run) in bench/results/<UTC stamp>-ab.md, also printed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 BINARY_A BINARY_B" >&2; exit 2; }
source bench/oha.sh
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dir=bench/results/$stamp-ab
mkdir -p "$dir"
summary=bench/results/$stamp-ab.md
{
  echo "# A/B per request, MODE=${MODE:-post}, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "A: \`$1\` ($(sha256sum "$1" | cut -c1-12)); B: \`$2\` ($(sha256sum "$2" | cut -c1-12))"
  echo
  echo "| round | binary | requests/s (2xx) | group CPU µs per request |"
  echo "|---|---|---:|---:|"
} > "$summary"
for round in $(seq 1 "${ROUNDS:-2}"); do
  for side in a b; do
    bin=$1; [ "$side" = b ] && bin=$2
    # No ceiling run (CEILING=0 unless set): the two binaries are each
    # other's baseline.
    CEILING=${CEILING:-0} BIN=$bin OUT_DIR="$dir/$side-$round" OUT_MD="$dir/$side-$round.md" \
      python3 bench/per_write.py > /dev/null
    rate=$(grep -oE '= [0-9,]+/s' "$dir/$side-$round.md" | head -1 | tr -d '= /s')
    cpu=$(grep -E '^\| \*\*group' "$dir/$side-$round.md" | awk -F'|' '{print $5}' | tr -d ' *')
    echo "| $round | $side | $rate | $cpu |" >> "$summary"
  done
done
cat "$summary"
