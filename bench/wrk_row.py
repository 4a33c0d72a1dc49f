#!/usr/bin/env python3
"""Reads the `JSON {...}` line that make_sessions.py's Lua `done` hook prints
from wrk output on stdin and prints one Markdown table row labelled argv[1]."""
import json
import sys

for line in sys.stdin:
    if line.startswith("JSON "):
        r = json.loads(line[5:])
        rps = r["requests"] / r["duration_us"] * 1e6
        print(
            f"| {sys.argv[1]} | {rps:,.0f} | {r['p50_us'] / 1000:.2f} | "
            f"{r['p99_us'] / 1000:.2f} | {r['non2xx']} | {r['errors']} |"
        )
        break
else:
    sys.exit("no JSON summary line in wrk output")
