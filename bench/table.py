#!/usr/bin/env python3
"""Turns a bench/run.sh result folder into a Markdown table: requests/s, p50
and p99 of each run, each as a ratio to our ceiling (same method) of the same
run. Only successful (2xx) answers count as throughput; other status codes are
listed so that a run full of errors cannot pass for a fast one.

The note column gives the peer's rows (tower-sessions + Redis) as a ratio to
the peer's own ceiling too, and our cluster's POST rows as a ratio to the
peer's POST (the issue's target is >= 1.5). Rows whose run is missing are left
out, except the peer's, which say "skipped" with the reason when run.sh could
not run them. A ratio whose base was not run in this folder is shown as "-"."""
import json
import sys
from pathlib import Path

PEER = "tower-sessions 0.14 + Redis (appendfsync always)"
TARGET = 1.5  # the target: cluster POST through a follower >= 1.5x the peer's

# (file name, label, method, our ceiling, own ceiling or None, compare to peer POST)
ROWS = [
    ("ceiling_get", "ceiling (no session layer)", "GET", "ceiling_get", None, False),
    ("standalone_get", "standalone MemoryStore", "GET", "ceiling_get", None, False),
    ("cluster_get_follower", "3-node cluster, read on follower", "GET", "ceiling_get", None, False),
    ("peer_ceiling_get", "peer ceiling (axum, no session layer)", "GET", "ceiling_get", None, False),
    ("peer_get", PEER, "GET", "ceiling_get", "peer_ceiling_get", False),
    ("ceiling_post", "ceiling (no session layer)", "POST", "ceiling_post", None, False),
    ("standalone_post", "standalone MemoryStore", "POST", "ceiling_post", None, False),
    ("cluster_post_follower", "3-node cluster, write via follower", "POST", "ceiling_post", None, True),
    ("cluster_post_leader", "3-node cluster, write on leader", "POST", "ceiling_post", None, True),
    ("peer_ceiling_post", "peer ceiling (axum, no session layer)", "POST", "ceiling_post", None, False),
    ("peer_post", PEER, "POST", "ceiling_post", "peer_ceiling_post", False),
]
PEER_ROWS = {"peer_ceiling_get", "peer_get", "peer_ceiling_post", "peer_post"}


def stats(path):
    data = json.loads(path.read_text())
    summary = data["summary"]
    codes = data.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    total = sum(codes.values()) or 1
    rps = summary["requestsPerSec"] * ok / total
    pct = data["latencyPercentiles"]
    errors = {c: n for c, n in codes.items() if not c.startswith("2")}
    p50 = (pct.get("p50") or 0) * 1000
    p99 = (pct.get("p99") or 0) * 1000
    return rps, p50, p99, errors


def ratio(a, b, fmt):
    return format(a / b, fmt) if b else "-"


def main():
    out = Path(sys.argv[1])
    results = {name: stats(out / f"{name}.json") for name, *_ in ROWS if (out / f"{name}.json").exists()}
    skipped = out / "peer.skipped"
    skip_reason = skipped.read_text().strip() if skipped.exists() else None
    print("| run | method | req/s (2xx) | x ceiling | p50 ms | p99 ms | p99 x ceiling | non-2xx | note |")
    print("|---|---|---:|---:|---:|---:|---:|---|---|")
    for name, label, method, base, own, vs_peer in ROWS:
        if name not in results:
            if name in PEER_ROWS and skip_reason:
                print(f"| {label} | {method} | skipped | - | - | - | - | - | {skip_reason} |")
            continue
        rps, p50, p99, errors = results[name]
        b_rps, _, b_p99, _ = results.get(base, (0, 0, 0, {}))
        err = ", ".join(f"{c}: {n}" for c, n in sorted(errors.items())) or "-"
        notes = []
        if own and own in results:
            o_rps, _, o_p99, _ = results[own]
            notes.append(f"x the peer's own ceiling: req/s {ratio(rps, o_rps, '.2f')}, "
                         f"p99 {ratio(p99, o_p99, '.1f')}")
        if vs_peer and "peer_post" in results:
            p_rps, _, p_p99, _ = results["peer_post"]
            r = rps / p_rps if p_rps else 0
            verdict = "meets" if r >= TARGET else "below"
            notes.append(f"req/s {r:.2f}x tower-sessions + Redis POST ({verdict} the >= {TARGET}x target); "
                         f"p99 {ratio(p99, p_p99, '.2f')}x theirs")
        note = "; ".join(notes) or "-"
        print(f"| {label} | {method} | {rps:,.0f} | {ratio(rps, b_rps, '.2f')} | {p50:.2f} | {p99:.2f} | "
              f"{ratio(p99, b_p99, '.1f')} | {err} | {note} |")


if __name__ == "__main__":
    main()
