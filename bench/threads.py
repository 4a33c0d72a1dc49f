"""CPU and context switches per acknowledged write, per thread of each node.

Starts `demo-app cluster` (as bench/per_write.py does), makes one session,
then for each concurrency in LEVELS (default "1 64") drives POST
/api/counter through a follower with oha for DURATION, reading every
thread's utime+stime (/proc/<pid>/task/<tid>/stat) and voluntary and
involuntary context switches (/proc/<pid>/task/<tid>/status) before and
after. Per node and per thread name (tokio-rt-worker, raft-log-writer,
...): CPU µs, voluntary and involuntary switches per acknowledged write.

What it is for: a write's cost is mostly per batch (wake-ups, the log
writer's hand-offs, fdatasync), not per entry; one connection shows the
cost of a batch of one, 64 connections how well batches share it.

Environment: BIN, OUT_MD, OUT_DIR (from threads.sh); LEVELS ("1 64"),
DURATION (5s), BENCH_BASE_PORT (4900), BENCH_CLUSTER_PORT (8900).
"""
import collections
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("BENCH_BASE_PORT", "4900")
os.environ.setdefault("BENCH_CLUSTER_PORT", "8900")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import per_write as pw  # noqa: E402  (its cluster_with_session, write_report)

LEVELS = [int(c) for c in os.environ.get("LEVELS", "1 64").split()]
DURATION = os.environ.get("DURATION", "5s")


def threads(pid):
    """{thread name: [cpu ticks, voluntary, involuntary]} summed over threads of one name."""
    out = collections.defaultdict(lambda: [0, 0, 0])
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = f"/proc/{pid}/task/{tid}"
        try:
            with open(f"{base}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            switches = {}
            with open(f"{base}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        key, value = line.split(":")
                        switches[key] = int(value)
        except OSError:
            continue  # the thread ended meanwhile
        row = out[name]
        row[0] += int(fields[11]) + int(fields[12])
        row[1] += switches.get("voluntary_ctxt_switches", 0)
        row[2] += switches.get("nonvoluntary_ctxt_switches", 0)
    return out


def run_level(port, cookie, connections):
    path = os.path.join(pw.OUT_DIR, f"oha-c{connections}.json")
    args = ["oha", "-z", DURATION, "-w", "-c", str(connections), "-m", "POST", "--no-tui",
            "--output-format", "json", "-H", f"Cookie: {cookie}",
            f"http://127.0.0.1:{port}/api/counter"]
    with open(path, "w") as out:
        subprocess.run(args, stdout=out, check=True)
    with open(path) as f:
        data = json.load(f)
    ok = sum(n for code, n in data.get("statusCodeDistribution", {}).items()
             if code.startswith("2"))
    return ok, data


def main():
    tick = os.sysconf("SC_CLK_TCK")
    md = ["# CPU and context switches per write, per node thread",
          "",
          f"Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, "
          f"shared by the nodes and oha; POST through a follower, one session cookie, "
          f"{DURATION} per level. Command: `LEVELS=\"{' '.join(map(str, LEVELS))}\" "
          f"DURATION={DURATION} bench/threads.sh`.", ""]
    with pw.cluster_with_session("threads-") as (_, _, follower, by_id, roles, cookie):
        for connections in LEVELS:
            before = {i: threads(n["pid"]) for i, n in by_id.items()}
            ok, data = run_level(by_id[follower]["port"], cookie, connections)
            after = {i: threads(n["pid"]) for i, n in by_id.items()}
            lat = data.get("latencyPercentiles", {})
            md += [f"## {connections} connection{'s' if connections > 1 else ''}: "
                   f"{ok / data['summary']['total']:,.0f} writes/s, "
                   f"p50 {lat.get('p50', 0) * 1e3:.2f} ms", "",
                   "| node | role | thread | CPU µs/write | voluntary switches/write "
                   "| involuntary/write |", "|---|---|---|---:|---:|---:|"]
            for i in sorted(by_id):
                total = [0.0, 0, 0]
                for name, end in sorted(after[i].items()):
                    start = before[i].get(name, [0, 0, 0])
                    d = [e - s for e, s in zip(end, start)]
                    total = [t + x for t, x in zip(total, d)]
                    if any(d) and ok:
                        md.append(f"| node-{i} | {roles[i]} | {name} | "
                                  f"{d[0] / tick * 1e6 / ok:.1f} | {d[1] / ok:.2f} | "
                                  f"{d[2] / ok:.2f} |")
                if ok:
                    md.append(f"| node-{i} | {roles[i]} | **all** | "
                              f"**{total[0] / tick * 1e6 / ok:.1f}** | "
                              f"**{total[1] / ok:.2f}** | {total[2] / ok:.2f} |")
            md.append("")
    md += ["CPU from utime+stime of each thread (clock ticks, so short runs at one "
           "connection are coarse); threads of one name are summed."]
    pw.write_report(md)


if __name__ == "__main__":
    main()
