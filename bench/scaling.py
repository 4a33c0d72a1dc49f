#!/usr/bin/env python3
"""Driver of bench/scaling.sh (run that, which builds first): per-node CPU
time and Raft log bytes per write, one mesh of three versus two meshes of
three. See the header of scaling.sh for the phases.

Environment: BIN (demo-app binary), OUT_DIR, OUT_MD; optional DURATION
(s per loaded phase, 12), IDLE (s, 8), CONNECTIONS (sat phase, all nodes, 48),
RATE (paced writes/s per mesh, 300), SESSIONS (per mesh, 300), REPEAT (2),
BENCH_BASE_PORT (4300), BENCH_CLUSTER_PORT (8300), PER_MESH (nodes per
mesh, 3), CONFIGS (mesh counts to run, "1 2").
"""
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from queue import Empty, Queue

BIN = os.environ["BIN"]
OUT_DIR = os.environ["OUT_DIR"]
OUT_MD = os.environ["OUT_MD"]
DURATION = int(os.environ.get("DURATION", "12"))
IDLE = int(os.environ.get("IDLE", "8"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "48"))
RATE = int(os.environ.get("RATE", "300"))
SESSIONS = int(os.environ.get("SESSIONS", "300"))
REPEAT = int(os.environ.get("REPEAT", "2"))
BASE = int(os.environ.get("BENCH_BASE_PORT", "4300"))
CLUSTER_BASE = int(os.environ.get("BENCH_CLUSTER_PORT", "8300"))
PER_MESH = int(os.environ.get("PER_MESH", "3"))
CONFIGS = [int(m) for m in os.environ.get("CONFIGS", "1 2").split()]
PACED_CONNS = 4  # connections per node in paced phases
TICK = os.sysconf("SC_CLK_TCK")
LOG_BYTES = "session_raft_log_bytes_appended_total"

LUA_TAIL = """
request = function()
  counter = counter + 1
  return wrk.format(nil, "/api/counter", { ["Cookie"] = cookies[(counter % #cookies) + 1] })
end
__DELAY__
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"non2xx\\": %d, \\"errors\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}\\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def request(method, port, path, cookie=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Cookie": cookie} if cookie else {})
        res = conn.getresponse()
        return res.status, res.read().decode(), res.getheader("set-cookie")
    finally:
        conn.close()


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def box_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)  # busy (not idle/iowait), all


def disk_bytes(pid):
    """Bytes this process caused to be written to storage (redb pages, fsync'd)."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def log_bytes(port):
    _, text, _ = request("GET", port, "/metrics")
    for line in text.splitlines():
        if line.startswith(LOG_BYTES + " ") or line.startswith(LOG_BYTES + "{"):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def status(port):
    return json.loads(request("GET", port, "/cluster/status")[1])


class Cluster:
    """One `demo-app cluster` launcher and its node processes."""

    def __init__(self, meshes, workdir, log):
        self.workdir = workdir
        self.launcher = subprocess.Popen(
            [BIN, "cluster", "--meshes", str(meshes), "--nodes-per-mesh", str(PER_MESH),
             "--base-port", str(BASE), "--base-cluster-port", str(CLUSTER_BASE),
             "--data-dir", os.path.join(workdir, "data"), "--log", "warn"],
            stdout=subprocess.PIPE, stderr=log, text=True)
        self.nodes = []  # dicts: id, port, pid, mesh
        # A thread reads the launcher's output (and keeps draining it).
        queue = Queue()
        threading.Thread(target=lambda: [queue.put(l) for l in self.launcher.stdout] +
                         [queue.put(None)], daemon=True).start()
        deadline, mesh, lines = time.monotonic() + 60, None, []
        while time.monotonic() < deadline:
            try:
                line = queue.get(timeout=1)
            except Empty:
                continue
            if line is None:
                break
            lines.append(line)
            if m := re.search(r"mesh (\S+): leader", line):
                mesh = m.group(1)
            if m := re.search(r"node-(\d+)\s+http://[\d.]+:(\d+)\s+pid (\d+)", line):
                self.nodes.append({"id": int(m.group(1)), "port": int(m.group(2)),
                                   "pid": int(m.group(3)), "mesh": mesh})
            if "Ctrl-C stops all nodes" in line:
                break
        if len(self.nodes) != meshes * PER_MESH or self.launcher.poll() is not None:
            self.stop()
            sys.exit("cluster did not start:\n" + "".join(lines))
        self.meshes = sorted({n["mesh"] for n in self.nodes})

    def roles(self):
        out = {}
        for n in self.nodes:
            s = status(n["port"])
            out[n["id"]] = "leader" if s.get("leader_id") == n["id"] else "follower"
        return out

    def of_mesh(self, mesh):
        return [n for n in self.nodes if n["mesh"] == mesh]

    def stop(self):
        if self.launcher.poll() is None:
            self.launcher.send_signal(signal.SIGTERM)
            try:
                self.launcher.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.launcher.kill()
                self.launcher.wait()
        # Stragglers: only the pids this launcher reported, and only if they
        # are still our binary running on our data directory.
        for n in self.nodes:
            try:
                with open(f"/proc/{n['pid']}/cmdline", "rb") as f:
                    if self.workdir.encode() in f.read():
                        os.kill(n["pid"], signal.SIGKILL)
            except OSError:
                pass


def create_sessions(cluster, mesh):
    """SESSIONS sessions of `mesh`, each made by one POST on a node of it."""
    nodes = cluster.of_mesh(mesh)
    cookies, lock = [], threading.Lock()

    def work(port, count):
        made = []
        for _ in range(count):
            code, _, cookie = request("POST", port, "/api/counter")
            if code == 200 and cookie:
                made.append(cookie.split(";", 1)[0])
        with lock:
            cookies.extend(made)

    threads = [threading.Thread(target=work, args=(nodes[i % len(nodes)]["port"],
                                                  SESSIONS // 12 + (i < SESSIONS % 12)))
               for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(cookies) < SESSIONS:
        sys.exit(f"only {len(cookies)} of {SESSIONS} sessions created in {mesh}")
    return cookies


def lua(path, cookies, offset, delay_ms):
    with open(path, "w") as f:
        f.write("cookies = {\n" + "".join(f'  "{c}",\n' for c in cookies) + "}\n")
        f.write(f'wrk.method = "POST"\ncounter = {offset}\n')
        delay = f"delay = function() return {delay_ms} end" if delay_ms else ""
        f.write(LUA_TAIL.replace("__DELAY__", delay))


def snapshot(cluster):
    return {n["id"]: (cpu_ticks(n["pid"]), log_bytes(n["port"]), disk_bytes(n["pid"]))
            for n in cluster.nodes}


def commit_index(cluster, mesh):
    return status(cluster.of_mesh(mesh)[0]["port"]).get("committed_index") or 0


def phase(cluster, name, loads, seconds, run_dir, lua_dir):
    """Runs `loads` [(session mesh, target node, connections, delay ms)] for
    `seconds`; returns per-node deltas and per-mesh wrk results."""
    before, box0 = snapshot(cluster), box_busy()
    commits0 = {m: commit_index(cluster, m) for m in cluster.meshes}
    t0 = time.monotonic()
    procs = []
    for i, (mesh, node, conns, delay) in enumerate(loads):
        script = os.path.join(lua_dir, f"{name}-{i}.lua")
        lua(script, cluster.cookies[mesh], i * 7919, delay)
        out = open(os.path.join(run_dir, f"{name}-{i}-node{node['id']}.txt"), "w")
        procs.append((mesh, out, subprocess.Popen(
            ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "-s", script,
             f"http://127.0.0.1:{node['port']}"], stdout=out, stderr=subprocess.STDOUT)))
    if not loads:
        time.sleep(seconds)
    per_mesh = {m: {"writes": 0, "errors": 0, "p50": [], "p99": []} for m in cluster.meshes}
    for mesh, out, p in procs:
        try:
            p.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        out.close()
        with open(out.name) as f:
            line = next((l for l in f if l.startswith("JSON ")), None)
        if line is None:
            sys.exit(f"no wrk summary in {out.name}")
        r = json.loads(line[5:])
        per_mesh[mesh]["writes"] += r["requests"] - r["non2xx"]
        per_mesh[mesh]["errors"] += r["non2xx"] + r["errors"]
        per_mesh[mesh]["p50"].append(r["p50_us"] / 1000)
        per_mesh[mesh]["p99"].append(r["p99_us"] / 1000)
    elapsed = time.monotonic() - t0
    after, box1 = snapshot(cluster), box_busy()
    for m in cluster.meshes:
        per_mesh[m]["entries"] = commit_index(cluster, m) - commits0[m]
    nodes = {i: {"cpu": (after[i][0] - before[i][0]) / TICK,
                 "bytes": after[i][1] - before[i][1],
                 "disk": after[i][2] - before[i][2]} for i in before}
    busy = (box1[0] - box0[0]) / max(1, box1[1] - box0[1])
    return {"name": name, "elapsed": elapsed, "nodes": nodes, "meshes": per_mesh,
            "box_busy": busy}


def report(cfg, run, cluster, roles, idle, ph, denominators):
    """Markdown for one loaded phase; `denominators[node id]` = the writes
    that node's figures are divided by."""
    out = [f"\n#### {cfg}, run {run}, phase `{ph['name']}` "
           f"({ph['elapsed']:.1f} s; whole box {ph['box_busy'] * 100:.0f}% busy)\n",
           "| node | mesh | role | CPU s | idle CPU s | CPU µs/write | net of idle µs/write "
           "| log bytes/write | disk bytes/write | writes |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = {}
    for n in cluster.nodes:
        d = ph["nodes"][n["id"]]
        w = denominators[n["id"]]
        idle_s = idle["nodes"][n["id"]]["cpu"] / idle["elapsed"] * ph["elapsed"]
        us = d["cpu"] / w * 1e6 if w else float("nan")
        net = (d["cpu"] - idle_s) / w * 1e6 if w else float("nan")
        bpw = d["bytes"] / w if w else float("nan")
        dpw = d["disk"] / w if w else float("nan")
        rows[n["id"]] = (us, net, bpw, dpw)
        out.append(f"| node-{n['id']} | {n['mesh']} | {roles[n['id']]} | {d['cpu']:.2f} | "
                   f"{idle_s:.2f} | {us:,.0f} | {net:,.0f} | {bpw:,.0f} | {dpw:,.0f} | {w:,} |")
    out += ["", "| mesh | writes | writes/s | errors | log entries/write | wrk p50 ms (max) "
            f"| wrk p99 ms (max) | CPU µs/write, mesh's {PER_MESH} nodes | net of idle "
            f"| log bytes/write, {PER_MESH} nodes |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    total_w = sum(m["writes"] for m in ph["meshes"].values())
    for mesh in cluster.meshes:
        m = ph["meshes"][mesh]
        ids = [n["id"] for n in cluster.of_mesh(mesh)]
        epw = m["entries"] / m["writes"] if m["writes"] else float("nan")
        p50 = max(m["p50"], default=0)
        p99 = max(m["p99"], default=0)
        out.append(f"| {mesh} | {m['writes']:,} | {m['writes'] / ph['elapsed']:,.0f} | {m['errors']} | "
                   f"{epw:.2f} | {p50:.1f} | {p99:.1f} | {sum(rows[i][0] for i in ids):,.0f} | "
                   f"{sum(rows[i][1] for i in ids):,.0f} | {sum(rows[i][2] for i in ids):,.0f} |")
    cpu_all = sum(d["cpu"] for d in ph["nodes"].values())
    out.append(f"\nTotal: {total_w:,} writes, {total_w / ph['elapsed']:,.0f} writes/s; "
               f"all nodes {cpu_all:.2f} CPU s = {cpu_all / max(1, total_w) * 1e6:,.0f} µs per write.")
    return "\n".join(out), rows


def run_config(meshes, run, summary, md):
    cfg = f"{meshes} mesh{'es' if meshes > 1 else ''} × {PER_MESH}"
    print(f"== {cfg}, run {run}", file=sys.stderr, flush=True)
    workdir = tempfile.mkdtemp(prefix="scaling-")
    run_dir = os.path.join(OUT_DIR, f"{meshes}x{PER_MESH}-run{run}")
    os.makedirs(run_dir, exist_ok=True)
    try:
        with open(os.path.join(run_dir, "cluster.log"), "w") as log:
            cluster = Cluster(meshes, workdir, log)
            try:
                cluster.cookies = {m: create_sessions(cluster, m) for m in cluster.meshes}
                time.sleep(1)
                roles = cluster.roles()
                idle = phase(cluster, "idle", [], IDLE, run_dir, workdir)
                n_nodes = len(cluster.nodes)
                sat = [(n["mesh"], n, max(1, CONNECTIONS // n_nodes), 0) for n in cluster.nodes]
                delay = round(PACED_CONNS * 1000 / (RATE / PER_MESH))
                paced = [(n["mesh"], n, PACED_CONNS, delay) for n in cluster.nodes]
                phases = [("sat", sat), ("rate", paced)]
                if meshes > 1:
                    cross = [(cluster.meshes[0], n, PACED_CONNS, delay)
                             for n in cluster.of_mesh(cluster.meshes[1])]
                    phases.append(("cross", cross))
                md.append(f"\n### {cfg}, run {run}\n\nIdle CPU over {idle['elapsed']:.1f} s: " +
                          ", ".join(f"node-{i} {d['cpu']:.2f} s" for i, d in idle["nodes"].items()))
                for name, loads in phases:
                    ph = phase(cluster, name, loads, DURATION, run_dir, workdir)
                    end_roles = cluster.roles()
                    shown = {i: r if r == end_roles[i] else f"{r}→{end_roles[i]}"
                             for i, r in roles.items()}
                    roles = end_roles
                    if name == "cross":
                        # Every write of the phase costs m1 (its group) and the m2
                        # node that took the request and forwarded it.
                        total = sum(m["writes"] for m in ph["meshes"].values())
                        den = {n["id"]: total for n in cluster.nodes}
                    else:
                        den = {n["id"]: ph["meshes"][n["mesh"]]["writes"] for n in cluster.nodes}
                    text, rows = report(cfg, run, cluster, shown, idle, ph, den)
                    md.append(text)
                    print(text, file=sys.stderr, flush=True)
                    summary.append((cfg, run, name, cluster, ph, rows))
            finally:
                cluster.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    md = [f"# Scaling run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n",
          f"Machine: {os.cpu_count()} cores ({cpu}), shared with other work; all node "
          f"processes and wrk on the same cores. {wrk_v}.",
          f"Command: `bench/scaling.sh` with DURATION={DURATION} IDLE={IDLE} "
          f"CONNECTIONS={CONNECTIONS} RATE={RATE} SESSIONS={SESSIONS} REPEAT={REPEAT} "
          f"PER_MESH={PER_MESH} CONFIGS=\"{' '.join(map(str, CONFIGS))}\".",
          "Phases: `sat` = closed loop, CONNECTIONS connections over all nodes; `rate` = "
          f"paced at about RATE writes/s per mesh ({PACED_CONNS} connections per node with a "
          "fixed think time, so the achieved rate is a little lower); `cross` = m1's sessions "
          "at that pace sent to m2's nodes (all forwarded). Per-node figures are divided by "
          "the writes of the node's own mesh (in `cross`: by all writes of the phase). "
          "'net of idle' subtracts each node's idle CPU rate × phase time. Log bytes = "
          "encoded entries appended (session_raft_log_bytes_appended_total); disk bytes = "
          "write_bytes of /proc/<pid>/io (what the node made the kernel write to storage: "
          "redb pages, snapshots)."]
    summary = []
    for run in range(1, REPEAT + 1):
        for meshes in CONFIGS:
            run_config(meshes, run, summary, md)
    # Compact summary: the group cost per write, per configuration and phase.
    md.append("\n## Summary\n\n| config | run | phase | writes/s per mesh | writes/s total "
              f"| CPU µs/write per node (median) | per mesh ({PER_MESH} nodes) | net of idle, per mesh "
              "| log bytes/write per node | disk bytes/write per node | box busy |\n"
              "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for cfg, run, name, cluster, ph, rows in summary:
        rates = " / ".join(f"{ph['meshes'][m]['writes'] / ph['elapsed']:,.0f}"
                           for m in cluster.meshes if ph["meshes"][m]["writes"])
        total = sum(m["writes"] for m in ph["meshes"].values()) / ph["elapsed"]
        groups = cluster.meshes if name == "cross" else \
            [m for m in cluster.meshes if ph["meshes"][m]["writes"]]
        per_mesh = " / ".join(f"{sum(rows[n['id']][0] for n in cluster.of_mesh(m)):,.0f}"
                              for m in groups)
        net = " / ".join(f"{sum(rows[n['id']][1] for n in cluster.of_mesh(m)):,.0f}"
                         for m in groups)
        loaded = [n["id"] for m in cluster.meshes if ph["meshes"][m]["writes"]
                  for n in cluster.of_mesh(m)]
        med = statistics.median(rows[i][0] for i in loaded)
        bpw = statistics.median(rows[i][2] for i in loaded)
        dpw = statistics.median(rows[i][3] for i in loaded)
        md.append(f"| {cfg} | {run} | {name} | {rates} | {total:,.0f} | {med:,.0f} | {per_mesh} | "
                  f"{net} | {bpw:,.0f} | {dpw:,.0f} | {ph['box_busy'] * 100:.0f}% |")
    with open(OUT_MD, "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md[-(len(summary) + 1):]))
    print(f"\nwritten: {OUT_MD}", file=sys.stderr)


if __name__ == "__main__":
    main()
