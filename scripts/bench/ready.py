#!/usr/bin/env python3
"""Start to ready: starts a kvs-server three times on the log it is given,
times each from process start until /readyz answers 200 (polled every
millisecond over one keep-alive connection), then kills it (SIGKILL: nothing
is flushed or compacted on the way out). Prints JSON: each start's
milliseconds and their median.

    ready.py LOG-PREFIX HOST:PORT -- KVS-SERVER [ARGS...]

Start N's output goes to LOG-PREFIX-N.log.
"""

import http.client
import json
import statistics
import subprocess
import sys
import time

RUNS = 3
LIMIT_S = 600


def ready_ms(cmd, host, port, log):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        conn = None
        while time.monotonic() - start < LIMIT_S:
            if proc.poll() is not None:
                sys.exit(f"kvs-server exited ({proc.returncode}) before it was ready; see {log.name}")
            try:
                conn = conn or http.client.HTTPConnection(host, port, timeout=5)
                conn.request("GET", "/kvs/v1-0-0/readyz")
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    return (time.monotonic() - start) * 1000
            except (OSError, http.client.HTTPException):
                # Not listening yet, or the connection went away.
                if conn:
                    conn.close()
                conn = None
            time.sleep(0.001)
        sys.exit(f"kvs-server was not ready within {LIMIT_S} s; see {log.name}")
    finally:
        proc.kill()
        proc.wait()


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit(__doc__)
    prefix, addr, cmd = sys.argv[1], sys.argv[2], sys.argv[4:]
    host, port = addr.rsplit(":", 1)
    runs = []
    for n in range(1, RUNS + 1):
        with open(f"{prefix}-{n}.log", "w") as log:
            runs.append(round(ready_ms(cmd, host, int(port), log), 1))
    print(json.dumps({"command": cmd, "ready_ms": runs, "ready_ms_median": statistics.median(runs)}))


if __name__ == "__main__":
    main()
