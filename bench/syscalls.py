"""System calls and context switches per acknowledged request, per node.

Starts `demo-app cluster` (as bench/per_write.py does), makes one session,
then drives POST /api/counter (MODE=get: GET) through a follower with oha
for DURATION at CONNECTIONS, while `perf stat` counts, for each node
process, its system calls by kind (tracepoints `syscalls:sys_enter_*`) and
its context switches. Counts divided by the acknowledged (2xx) requests.

What it is for: counts do not move with the machine's speed the way CPU
time does on a shared VM, so they show a change in wake-ups (futex),
fsyncs (fdatasync) or socket calls per request even when the CPU figures
are lost in noise. This is how glibc's arena lock wake-ups (46% of the
front node's futex calls) were found, and what mimalloc changed (README,
"Benchmarks").

Needs `perf` with tracepoint access (root, or kernel.perf_event_paranoid
<= -1). Environment: BIN, OUT_MD, OUT_DIR (from syscalls.sh); MODE (post),
DURATION (8s), CONNECTIONS (64), BENCH_BASE_PORT (4950),
BENCH_CLUSTER_PORT (8950).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

os.environ.setdefault("BENCH_BASE_PORT", "4950")
os.environ.setdefault("BENCH_CLUSTER_PORT", "8950")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import per_write as pw  # noqa: E402  (its cluster_with_session, write_report)

DURATION = os.environ.get("DURATION", "8s")
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
MODE = os.environ.get("MODE", "post").lower()
CALLS = ["futex", "epoll_wait", "write", "writev", "recvfrom", "fdatasync"]
EVENTS = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{c}" for c in CALLS] + [
    "context-switches"]


def start_counting(pid, path):
    """`perf stat` attached to `pid` until interrupted, CSV into `path`."""
    return subprocess.Popen(["perf", "stat", "-x", ",", "-o", path, "-e", ",".join(EVENTS),
                             "-p", str(pid)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def counts(path):
    """{event: count} from a `perf stat -x ,` file; missing events are absent."""
    out = {}
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) > 2 and fields[0].isdigit():
                out[fields[2]] = int(fields[0])
    return out


def main():
    if shutil.which("perf") is None:
        sys.exit("perf is not installed (bench/syscalls.sh installs Debian's linux-perf)")
    method = "GET" if MODE == "get" else "POST"
    noun = "read" if MODE == "get" else "write"
    md = [f"# System calls and context switches per {noun}, per node",
          "",
          f"Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, "
          f"shared by the nodes and oha; {method} through a follower, one session cookie, "
          f"{CONNECTIONS} connections, {DURATION}. Command: `MODE={MODE} DURATION={DURATION} "
          f"CONNECTIONS={CONNECTIONS} bench/syscalls.sh`.", ""]
    with pw.cluster_with_session("syscalls-") as (_, _, follower, by_id, roles, cookie):
        files = {i: os.path.join(pw.OUT_DIR, f"perf-node-{i}.csv") for i in by_id}
        perfs = {i: start_counting(n["pid"], files[i]) for i, n in by_id.items()}
        time.sleep(0.3)  # attached before the load starts
        oha_json = os.path.join(pw.OUT_DIR, "oha.json")
        with open(oha_json, "w") as out:
            subprocess.run(["oha", "-z", DURATION, "-w", "-c", str(CONNECTIONS), "-m",
                            method, "--no-tui", "--output-format", "json", "-H",
                            f"Cookie: {cookie}",
                            f"http://127.0.0.1:{by_id[follower]['port']}/api/counter"],
                           stdout=out, check=True)
        for p in perfs.values():
            p.send_signal(signal.SIGINT)
        for p in perfs.values():
            p.wait(timeout=10)
    with open(oha_json) as f:
        data = json.load(f)
    ok = sum(n for code, n in data.get("statusCodeDistribution", {}).items()
             if code.startswith("2"))
    if ok == 0:
        sys.exit("no request was answered with 2xx")
    md += [f"Answered (2xx): {ok:,} in {DURATION} = {ok / data['summary']['total']:,.0f}/s.", "",
           f"| node | role | all syscalls | {' | '.join(CALLS)} | context switches |",
           "|---|---|" + "---:|" * (len(CALLS) + 2)]
    for i in sorted(by_id):
        c = counts(files[i])
        cells = [c.get(e) for e in EVENTS]
        shown = ["-" if v is None else f"{v / ok:.3f}" for v in cells]
        md.append(f"| node-{i} | {roles[i]} | {' | '.join(shown)} |")
    md += ["", f"Per {noun}: each count over the whole run (perf attached from before the "
           "load until its end, so idle heartbeats are included) divided by the 2xx answers. "
           "`-` means the event could not be counted here (no tracepoint access?)."]
    pw.write_report(md)


if __name__ == "__main__":
    main()
