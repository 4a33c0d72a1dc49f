"""Resident memory per session, per node of a three-node durable cluster.

Starts `demo-app cluster` (as bench/per_write.py does: one OS process per
node, durable storage in a temporary directory, loopback), waits for a
leader, lets the nodes settle and reads each node's VmRSS (/proc/<pid>/status).
Then oha sends SESSIONS POSTs without a cookie through a follower: each
creates one small session (the demo's counter, one key). Once every node
has applied them (session_count in /cluster/status) and SETTLE seconds have
passed, VmRSS is read again: growth / sessions = bytes per session per node.
The same for `demo-app standalone` (MemoryStore, one process) as the
reference. Sessions live 30 minutes (the demo's idle timeout), far longer
than the run, so none expires meanwhile.

Environment: BIN, OUT_MD, OUT_DIR (from memory.sh); SESSIONS (200000),
CONNECTIONS (64), SETTLE (s, 5), BENCH_BASE_PORT (4800),
BENCH_CLUSTER_PORT (8800).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("BENCH_BASE_PORT", "4800")
os.environ.setdefault("BENCH_CLUSTER_PORT", "8800")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import per_write as pw  # noqa: E402  (its Cluster, request and status helpers)

SESSIONS = int(os.environ.get("SESSIONS", "200000"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
SETTLE = float(os.environ.get("SETTLE", "5"))


def rss(pid):
    """Resident set size of `pid` in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def create_sessions(port, name):
    """SESSIONS cookie-less POSTs: one new session each. Returns the 2xx count."""
    path = os.path.join(pw.OUT_DIR, f"{name}.json")
    with open(path, "w") as out:
        subprocess.run(["oha", "-n", str(SESSIONS), "-c", str(CONNECTIONS), "-m", "POST",
                        "--no-tui", "--output-format", "json",
                        f"http://127.0.0.1:{port}/api/counter"], stdout=out, check=True)
    with open(path) as f:
        codes = json.load(f).get("statusCodeDistribution", {})
    return sum(n for code, n in codes.items() if code.startswith("2"))


def wait_applied(nodes, want):
    """Until every node holds `want` sessions (60 s at most)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = [pw.status(n["port"]).get("session_count", 0) for n in nodes]
        if all(c >= want for c in counts):
            return counts
        time.sleep(0.5)
    sys.exit(f"sessions not applied everywhere within 60 s: {counts}")


def cluster_rows(workdir):
    rows = []
    with open(os.path.join(pw.OUT_DIR, "cluster.log"), "w") as log:
        cluster = pw.Cluster(workdir, log)
        try:
            leader = pw.wait_ready(cluster)
            by_id = {n["id"]: n for n in cluster.nodes}
            follower = by_id[leader % pw.NODES + 1]
            time.sleep(SETTLE)
            start = {n["id"]: rss(n["pid"]) for n in cluster.nodes}
            before = wait_applied(cluster.nodes, 0)[0]
            ok = create_sessions(follower["port"], "cluster")
            counts = wait_applied(cluster.nodes, before + ok)
            time.sleep(SETTLE)
            for n in sorted(cluster.nodes, key=lambda n: n["id"]):
                role = ("leader" if n["id"] == leader else
                        "follower taking requests" if n is follower else "other follower")
                end = rss(n["pid"])
                rows.append((f"node-{n['id']}", role, start[n["id"]], end, ok,
                             pw.status(n["port"]).get("snapshot_index")))
            return rows, ok, counts
        finally:
            cluster.stop()


def standalone_row():
    port = pw.BASE + 10
    proc = subprocess.Popen([pw.BIN, "standalone", "--listen", f"127.0.0.1:{port}",
                             "--insecure-cookies", "--log", "warn"],
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if pw.request("GET", port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("standalone did not start")
            time.sleep(0.2)
        time.sleep(SETTLE)
        start = rss(proc.pid)
        ok = create_sessions(port, "standalone")
        time.sleep(SETTLE)
        return ("standalone", "MemoryStore, one process", start, rss(proc.pid), ok, None)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    os.makedirs(pw.OUT_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rs-memory-") as workdir:
        rows, ok, counts = cluster_rows(workdir)
    rows.append(standalone_row())
    md = ["# Resident memory per session", "",
          f"Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine {os.cpu_count()} "
          f"cores. Command: `SESSIONS={SESSIONS} bench/memory.sh`. Each session: one cookie-less "
          "POST /api/counter (the demo's counter: one key, a small JSON number), "
          f"{CONNECTIONS} connections, through a follower for the cluster (durable storage); "
          f"VmRSS read {SETTLE:g} s after the nodes settled, before and after.", "",
          f"Cluster: {ok:,} sessions acknowledged; session_count on the nodes afterwards: "
          f"{', '.join(f'{c:,}' for c in counts)}.", "",
          "| process | role | VmRSS before | VmRSS after | sessions | bytes per session | snapshot index |",
          "|---|---|---:|---:|---:|---:|---:|"]
    for name, role, start, end, n, snap in rows:
        per = (end - start) / n if n else float("nan")
        md.append(f"| {name} | {role} | {start / 2**20:.1f} MiB | {end / 2**20:.1f} MiB | {n:,} "
                  f"| **{per:,.0f}** | {snap if snap is not None else '-'} |")
    md += ["", "Growth includes everything the process holds for those sessions: the session "
           "map, the log's tail cache and index (entries since the last snapshot), allocator "
           "slack. The snapshot index says how much of the log a snapshot had covered."]
    text = "\n".join(md) + "\n"
    with open(pw.OUT_MD, "w") as f:
        f.write(text)
    print(text)
    print(f"written: {pw.OUT_MD}", file=sys.stderr)


if __name__ == "__main__":
    main()
