#!/usr/bin/env python3
"""Driver of bench/per_write.sh (run that, which builds first): what one
acknowledged write (or, with MODE=get, one answered read) costs each node of
a three-node durable cluster when the requests go through a follower.

Starts `demo-app cluster` (one OS process per node, durable storage in a
temporary directory, loopback), makes one session with a POST on a follower,
measures each node process's idle CPU for IDLE s, then runs oha at
CONNECTIONS connections for DURATION against that follower with the session's
cookie (with -w: requests in flight at the deadline are waited for). Before
and after the oha run it reads, per node process:
  /proc/<pid>/stat  utime + stime (clock ticks, SC_CLK_TCK)
  /proc/<pid>/io    write_bytes (what the process made the kernel write to
                    storage: log records, snapshots,
                    filesystem metadata, fsync'd) and wchar (bytes passed to
                    write(2)-like calls: disk, sockets and pipes alike)
  /metrics          session_raft_log_bytes_appended_total (encoded log
                    entries appended, without the log's record framing)
  /cluster/status   last_log_index (log entries appended)
Acknowledged writes = the 2xx count of oha's status code distribution.

Then, unless CEILING=0, the same oha run against `demo-app ceiling` (the same
handlers with no session layer, one process) with its CPU per request
(/proc/<pid>/stat) and oha's: CPU per request is far steadier on this shared
machine than requests per second, so the table also gives the cluster's CPU
per request as a ratio to the ceiling's, measured minutes apart at most.

Environment: BIN (demo-app binary), OUT_MD, OUT_DIR; optional MODE (post |
get, post), DURATION (oha's -z, 8s), CONNECTIONS (64), IDLE (s, 2; 0 skips),
CEILING (1; 0 skips the ceiling run), BENCH_BASE_PORT (4500; the ceiling
listens on BENCH_BASE_PORT - 1), BENCH_CLUSTER_PORT (8500).
"""
import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from queue import Empty, Queue

BIN = os.environ["BIN"]
OUT_MD = os.environ["OUT_MD"]
OUT_DIR = os.environ["OUT_DIR"]
MODE = os.environ.get("MODE", "post").lower()
DURATION = os.environ.get("DURATION", "8s")
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
IDLE = float(os.environ.get("IDLE", "2"))
BASE = int(os.environ.get("BENCH_BASE_PORT", "4500"))
CLUSTER_BASE = int(os.environ.get("BENCH_CLUSTER_PORT", "8500"))
CEILING = os.environ.get("CEILING", "1") != "0"
TICK = os.sysconf("SC_CLK_TCK")
LOG_BYTES = "session_raft_log_bytes_appended_total"
NODES = 3


def request(method, port, path, cookie=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Cookie": cookie} if cookie else {})
        res = conn.getresponse()
        return res.status, res.read().decode(), res.getheader("set-cookie")
    finally:
        conn.close()


def status(port):
    return json.loads(request("GET", port, "/cluster/status")[1])


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)


def io_counters(pid):
    out = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            key, value = line.split(":", 1)
            out[key] = int(value)
    return out["write_bytes"], out["wchar"]


def log_bytes(port):
    _, text, _ = request("GET", port, "/metrics")
    for line in text.splitlines():
        if line.startswith(LOG_BYTES + " ") or line.startswith(LOG_BYTES + "{"):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def snapshot(nodes):
    out = {}
    for n in nodes:
        write_bytes, wchar = io_counters(n["pid"])
        out[n["id"]] = {"cpu": cpu_ticks(n["pid"]), "disk": write_bytes, "wchar": wchar,
                        "log": log_bytes(n["port"]),
                        "index": status(n["port"]).get("last_log_index") or 0}
    return out


class Cluster:
    """One `demo-app cluster` launcher and its three node processes."""

    def __init__(self, workdir, log):
        self.workdir = workdir
        self.launcher = subprocess.Popen(
            [BIN, "cluster", "--base-port", str(BASE), "--base-cluster-port", str(CLUSTER_BASE),
             "--data-dir", os.path.join(workdir, "data"), "--log", "warn"],
            stdout=subprocess.PIPE, stderr=log, text=True)
        self.nodes = []  # dicts: id, port, pid
        queue = Queue()
        # Reads (and keeps draining) the launcher's output.
        threading.Thread(target=lambda: [queue.put(l) for l in self.launcher.stdout] +
                         [queue.put(None)], daemon=True).start()
        deadline, lines = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            try:
                line = queue.get(timeout=1)
            except Empty:
                continue
            if line is None:
                break
            lines.append(line)
            if m := re.search(r"node-(\d+)\s+http://[\d.]+:(\d+)\s+pid (\d+)", line):
                self.nodes.append({"id": int(m.group(1)), "port": int(m.group(2)),
                                   "pid": int(m.group(3))})
            if "Ctrl-C stops all nodes" in line:
                break
        if len(self.nodes) != NODES or self.launcher.poll() is not None:
            self.stop()
            sys.exit("cluster did not start:\n" + "".join(lines))
        # The launcher runs each node as its own process; make sure these pids
        # are those processes (our binary, `node`, our data directory).
        for n in self.nodes:
            with open(f"/proc/{n['pid']}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"node" not in argv or self.workdir.encode() not in b" ".join(argv):
                self.stop()
                sys.exit(f"pid {n['pid']} is not node-{n['id']} of this cluster")

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


def wait_ready(cluster):
    """Until every node is ready and all agree on one leader; returns its id."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            leaders = {status(n["port"]).get("leader_id") for n in cluster.nodes}
            ready = all(request("GET", n["port"], "/readyz")[0] == 200 for n in cluster.nodes)
            if ready and len(leaders) == 1 and None not in leaders:
                return leaders.pop()
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("no agreed leader within 60 s")


def one_session(cluster):
    """Once every node agrees on a leader: makes one session through the
    follower bench/run.sh picks. Returns (leader id, follower id, nodes by
    id, role by id, the session's cookie)."""
    leader = wait_ready(cluster)
    follower = leader % NODES + 1  # as bench/run.sh picks it
    by_id = {n["id"]: n for n in cluster.nodes}
    roles = {i: "leader" if i == leader else
             "follower taking requests" if i == follower else "other follower"
             for i in by_id}
    code, body, cookie = request("POST", by_id[follower]["port"], "/api/counter")
    if code != 200 or not cookie:
        sys.exit(f"could not create a session: {code} {body}")
    time.sleep(0.5)  # let the session's entry reach every node
    return leader, follower, by_id, roles, cookie.split(";", 1)[0]


@contextlib.contextmanager
def cluster_with_session(prefix):
    """A started cluster (data in a temporary directory named after `prefix`,
    its log in OUT_DIR/cluster.log) and one session: yields (cluster, leader,
    follower, by_id, roles, cookie) as `one_session` gives them; stops every
    node and removes the directory afterwards, whatever happened."""
    os.makedirs(OUT_DIR, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        with open(os.path.join(OUT_DIR, "cluster.log"), "w") as log:
            cluster = Cluster(workdir, log)
            try:
                yield (cluster, *one_session(cluster))
            finally:
                cluster.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def write_report(md):
    """Writes the report's lines `md` to OUT_MD and prints them."""
    text = "\n".join(md) + "\n"
    with open(OUT_MD, "w") as f:
        f.write(text)
    print(text)
    print(f"written: {OUT_MD}", file=sys.stderr)


def oha(port, cookie, path):
    # -w: requests in flight at the deadline are waited for, not aborted
    # (an aborted write may still commit, and would cost without counting).
    args = ["oha", "-z", DURATION, "-w", "-c", str(CONNECTIONS), "-m", MODE.upper(), "--no-tui",
            "--output-format", "json", "-H", f"Cookie: {cookie}",
            f"http://127.0.0.1:{port}/api/counter"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(path, "w") as out:
        subprocess.run(args, stdout=out, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(path) as f:
        data = json.load(f)
    codes = data.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if code.startswith("2"))
    other = {c: n for c, n in codes.items() if not c.startswith("2")}
    errors = data.get("errorDistribution", {})
    return ok, other, errors, data, cpu


def ceiling_run(cookie, path):
    """oha against `demo-app ceiling` as against the cluster: (answered
    requests, seconds, the server's CPU s, oha's CPU s)."""
    port = BASE - 1
    server = subprocess.Popen([BIN, "ceiling", "--listen", f"127.0.0.1:{port}", "--log", "warn"])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request("GET", port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("the ceiling server did not start")
            time.sleep(0.1)
        before = cpu_ticks(server.pid)
        ok, _, _, data, oha_cpu = oha(port, cookie, path)
        server_cpu = (cpu_ticks(server.pid) - before) / TICK
        return ok, data["summary"].get("total", 0.0), server_cpu, oha_cpu
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def fmt(x, spec=None):
    """A figure for the table: "-" for NaN, one decimal below 10."""
    if x != x:
        return "-"
    if spec is None:
        spec = ",.1f" if abs(x) < 10 else ",.0f"
    text = format(x, spec)
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def main():
    if MODE not in ("post", "get"):
        sys.exit(f"MODE must be post or get, not {MODE!r}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    unit = "write" if MODE == "post" else "read"
    with cluster_with_session("per-write-") as (cluster, leader, follower, by_id, roles, cookie):
        idle = {}
        if IDLE > 0:
            s0, t0 = snapshot(cluster.nodes), time.monotonic()
            time.sleep(IDLE)
            s1, idle_s = snapshot(cluster.nodes), time.monotonic() - t0
            idle = {i: (s1[i]["cpu"] - s0[i]["cpu"]) / TICK / idle_s for i in s0}
        print(f"== {MODE.upper()} through follower node-{follower} (leader node-{leader}), "
              f"{CONNECTIONS} connections, {DURATION}", file=sys.stderr, flush=True)
        before, t0 = snapshot(cluster.nodes), time.monotonic()
        ok, other, errors, data, oha_cpu = oha(by_id[follower]["port"], cookie,
                                                os.path.join(OUT_DIR, f"oha-{MODE}.json"))
        elapsed = time.monotonic() - t0
        after = snapshot(cluster.nodes)
        end_leader = status(by_id[follower]["port"]).get("leader_id")
        _, body, _ = request("GET", by_id[follower]["port"], "/api/counter", cookie)
        final_count = json.loads(body)["count"]
    ceiling = ceiling_run(cookie, os.path.join(OUT_DIR, f"oha-{MODE}-ceiling.json")) if CEILING else None

    d = {i: {k: after[i][k] - before[i][k] for k in before[i]} for i in before}
    per = (lambda x: x / ok) if ok else (lambda x: float("nan"))
    oha_s = data["summary"].get("total", elapsed)
    cpu = " ".join(os.popen("grep -m1 'model name' /proc/cpuinfo").read().split(":")[-1].split())
    oha_v = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
    md = [f"# Cost per {unit}, 3-node durable cluster, {MODE.upper()} through a follower",
          "",
          f"Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine {os.cpu_count()} cores "
          f"({cpu}), shared: nodes and oha on the same cores. {oha_v}, {CONNECTIONS} connections, "
          f"{DURATION}, one session cookie. Command: `MODE={MODE} DURATION={DURATION} "
          f"CONNECTIONS={CONNECTIONS} bench/per_write.sh`.",
          "",
          f"{'Acknowledged' if MODE == 'post' else 'Answered'} {unit}s (2xx): {ok:,} in {oha_s:.1f} s = {ok / oha_s:,.0f}/s; "
          f"non-2xx: {', '.join(f'{c}: {n}' for c, n in sorted(other.items())) or 'none'}; "
          f"errors: {', '.join(f'{e}: {n}' for e, n in sorted(errors.items())) or 'none'}. Leader node-{leader}"
          f"{'' if end_leader == leader else f' (node-{end_leader} at the end: a leader change!)'}; "
          f"requests sent to node-{follower}. Counter of the session after the run: {final_count:,}"
          + (" (concurrent increments of one session overwrite each other, so it can be lower "
             "than the 2xx count)." if MODE == "post" else "."),
          "",
          f"| node | role | CPU s | CPU µs/{unit} | idle CPU ms/s | net of idle µs/{unit} "
          f"| disk bytes/{unit} (write_bytes) | wchar bytes/{unit} | log bytes/{unit} | log entries appended |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    total_cpu = total_net = 0.0
    for i in sorted(d):
        cpu_s = d[i]["cpu"] / TICK
        idle_rate = idle.get(i, float("nan"))
        net = cpu_s - idle_rate * elapsed if i in idle else float("nan")
        total_cpu += cpu_s
        total_net += net
        md.append(f"| node-{i} | {roles[i]} | {cpu_s:.2f} | {fmt(per(cpu_s) * 1e6)} | "
                  f"{fmt(idle_rate * 1000, '.1f')} | {fmt(per(net) * 1e6)} | {fmt(per(d[i]['disk']))} | "
                  f"{fmt(per(d[i]['wchar']))} | {fmt(per(d[i]['log']))} | {d[i]['index']:,} |")
    md.append(f"| **group** | all 3 nodes | {total_cpu:.2f} | **{fmt(per(total_cpu) * 1e6)}** | "
              f"{fmt(sum(idle.values()) * 1000, '.1f') if idle else '-'} | {fmt(per(total_net) * 1e6)} | "
              f"{fmt(per(sum(x['disk'] for x in d.values())))} | "
              f"{fmt(per(sum(x['wchar'] for x in d.values())))} | "
              f"{fmt(per(sum(x['log'] for x in d.values())))} | - |")
    entries = d[leader]["index"]
    entry_size = d[leader]["log"] / entries if entries else float("nan")
    md += ["",
           f"Load generator (oha) CPU: {oha_cpu:.2f} s = {fmt(per(oha_cpu) * 1e6)} µs/{unit} "
           "(not in the group total).",
           f"Encoded size of one log entry: {fmt(entry_size)} bytes on average "
           f"(leader's {LOG_BYTES} over its {entries:,} appended entries; the log's "
           "record framing, snapshots and filesystem overhead are not included: they are in write_bytes)."
           if entries else "No log entries were appended during the run (reads only).",
           ""]
    if ceiling:
        c_ok, c_s, c_cpu, c_oha = ceiling
        c_per = (lambda x: x / c_ok) if c_ok else (lambda x: float("nan"))
        front = d[follower]["cpu"] / TICK
        md += [f"Ceiling (`demo-app ceiling`: the same handlers, no session layer), the same oha run "
               f"right after: {c_ok:,} requests in {c_s:.1f} s = {c_ok / c_s if c_s else 0:,.0f}/s; "
               f"server {fmt(c_per(c_cpu) * 1e6)} µs/request, oha {fmt(c_per(c_oha) * 1e6)} µs/request. "
               f"By CPU per request, ceiling / cluster: the node taking the requests "
               f"{fmt(c_per(c_cpu) / per(front), '.2f')}x, the whole group "
               f"{fmt(c_per(c_cpu) / per(total_cpu), '.2f')}x, group and oha against server and oha "
               f"{fmt((c_per(c_cpu) + c_per(c_oha)) / (per(total_cpu) + per(oha_cpu)), '.2f')}x "
               "(the requests/s ratio a run bound by these two cores would show).",
               ""]
    md += ["",
           "CPU = utime + stime of /proc/<pid>/stat; disk bytes = write_bytes of /proc/<pid>/io "
           "(what the node made the kernel write to storage: log records, snapshots, "
           "filesystem metadata, fsync'd); wchar = bytes "
           "handed to write-like system calls (sockets included); 'net of idle' subtracts each "
           f"node's CPU rate over {IDLE:g} s of no load before the run (heartbeats, timers) times "
           "the run's length."]
    write_report(md)
    if ok == 0:
        sys.exit(f"no acknowledged {unit}s")


if __name__ == "__main__":
    main()
