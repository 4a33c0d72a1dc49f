#!/usr/bin/env python3
"""Turns a bench/run.sh result folder into a Markdown table: requests/s, p50
and p99 of each run, each as a ratio to the ceiling (same method) of the same
run. Only successful (2xx) answers count as throughput; other status codes are
listed so that a run full of errors cannot pass for a fast one."""
import json
import sys
from pathlib import Path

ROWS = [
    ("ceiling_get", "ceiling (no session layer)", "GET", "ceiling_get"),
    ("standalone_get", "standalone MemoryStore", "GET", "ceiling_get"),
    ("cluster_get_follower", "3-node cluster, read on follower", "GET", "ceiling_get"),
    ("ceiling_post", "ceiling (no session layer)", "POST", "ceiling_post"),
    ("standalone_post", "standalone MemoryStore", "POST", "ceiling_post"),
    ("cluster_post_follower", "3-node cluster, write via follower", "POST", "ceiling_post"),
    ("cluster_post_leader", "3-node cluster, write on leader", "POST", "ceiling_post"),
]


def stats(path):
    data = json.loads(path.read_text())
    summary = data["summary"]
    codes = data.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    total = sum(codes.values()) or 1
    rps = summary["requestsPerSec"] * ok / total
    pct = data["latencyPercentiles"]
    errors = {c: n for c, n in codes.items() if not c.startswith("2")}
    return rps, pct["p50"] * 1000, pct["p99"] * 1000, errors


def main():
    out = Path(sys.argv[1])
    results = {name: stats(out / f"{name}.json") for name, *_ in ROWS if (out / f"{name}.json").exists()}
    print("| run | method | req/s (2xx) | x ceiling | p50 ms | p99 ms | p99 x ceiling | non-2xx |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, label, method, base in ROWS:
        if name not in results:
            continue
        rps, p50, p99, errors = results[name]
        b_rps, _, b_p99, _ = results.get(base, (rps, 0, p99, {}))
        err = ", ".join(f"{c}: {n}" for c, n in sorted(errors.items())) or "-"
        print(f"| {label} | {method} | {rps:,.0f} | {rps / b_rps:.2f} | {p50:.2f} | {p99:.2f} | {p99 / b_p99:.1f} | {err} |")


if __name__ == "__main__":
    main()
