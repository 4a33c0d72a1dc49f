# Sourced by the bench scripts whose work is a Python script driving the
# demo cluster (per_write.sh, memory.sh, threads.sh): `run_cluster_py NAME`
# installs oha when missing, builds demo-app in release mode and runs
# bench/NAME.py with BIN, OUT_DIR (bench/results/<UTC stamp>-<suffix>/) and
# OUT_MD (bench/results/<UTC stamp>-<suffix>.md) set; the suffix is NAME
# with underscores as dashes (per_write -> per-write).
run_cluster_py() {
  local name=$1
  source bench/oha.sh
  cargo build --release -p demo-app
  export BIN=${CARGO_TARGET_DIR:-target}/release/demo-app
  local stamp suffix=${name//_/-}
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  export OUT_DIR=bench/results/$stamp-$suffix
  export OUT_MD=bench/results/$stamp-$suffix.md
  exec python3 "bench/$name.py"
}
