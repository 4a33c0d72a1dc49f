#!/usr/bin/env python3
"""Creates N sessions on a demo node (one POST /api/counter each, no cookie)
and writes a wrk Lua script that spreads requests over all their cookies.

    make_sessions.py URL COUNT OUT.lua METHOD
"""
import http.client
import sys
import threading
from urllib.parse import urlsplit


def create(host, port, count, cookies, lock):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    made = []
    for _ in range(count):
        conn.request("POST", "/api/counter")
        res = conn.getresponse()
        res.read()
        cookie = res.getheader("set-cookie")
        if res.status == 200 and cookie:
            made.append(cookie.split(";", 1)[0])
    conn.close()
    with lock:
        cookies.extend(made)


def main():
    url, count, out, method = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    parts = urlsplit(url)
    cookies, lock, threads = [], threading.Lock(), []
    workers = 16
    for i in range(workers):
        n = count // workers + (1 if i < count % workers else 0)
        t = threading.Thread(target=create, args=(parts.hostname, parts.port, n, cookies, lock))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    if len(cookies) < count:
        sys.exit(f"only {len(cookies)} of {count} sessions were created")
    with open(out, "w") as f:
        f.write("cookies = {\n")
        for c in cookies:
            f.write(f'  "{c}",\n')
        f.write("}\n")
        f.write(f'wrk.method = "{method}"\n')
        f.write(
            """
counter = 0
request = function()
  counter = counter + 1
  local cookie = cookies[(counter % #cookies) + 1]
  return wrk.format(nil, "/api/counter", { ["Cookie"] = cookie })
end

done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"non2xx\\": %d, \\"errors\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}\\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
        )
    print(f"{len(cookies)} sessions", file=sys.stderr)


if __name__ == "__main__":
    main()
