#!/usr/bin/env python3
"""Failover time: PUTs a probe key through a standby, following its 307 or
308 to the primary with the same method and body (as curl -L does; urllib
would not for a PUT), until writes flow; then kills the primary (SIGKILL)
and goes on writing, each write that fails tried again after
RETRY_S, until one is answered 200. Prints JSON: the milliseconds from the
kill to that 200, and how many writes failed meanwhile.

    failover.py STANDBY-URL PRIMARY-PID

STANDBY-URL is the standby's base URL (http://127.0.0.1:PORT). A new
connection per request: after the kill, the primary's address refuses
them.
"""

import http.client
import json
import os
import signal
import sys
import time
import urllib.parse

KEY = "/kvs/v1-0-0/str/bench_failover"
# Writes answered 200 before the kill: writes flow through the standby.
FLOWING = 20
# Between a failed write and the next: well under the lease's
# milliseconds, so the figure is the failover's, not the probe's.
RETRY_S = 0.01
REQUEST_TIMEOUT_S = 5
LIMIT_S = 120
MAX_REDIRECTS = 5


def put(url, value):
    """The status the write was finally answered with, redirects followed;
    None when a node could not be reached or did not answer in time."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_TIMEOUT_S)
        try:
            conn.request("PUT", parts.path, body=value)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()
        if resp.status not in (307, 308):
            return resp.status
        url = urllib.parse.urljoin(url, resp.getheader("Location"))
    sys.exit(f"more than {MAX_REDIRECTS} redirects in a row from {url}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    url, primary_pid = sys.argv[1].rstrip("/") + KEY, int(sys.argv[2])
    start = time.monotonic()
    flowing = 0
    while flowing < FLOWING:
        if time.monotonic() - start > LIMIT_S:
            sys.exit(f"writes through {sys.argv[1]} do not flow")
        if put(url, str(flowing).encode()) == 200:
            flowing += 1
        else:
            time.sleep(RETRY_S)
    os.kill(primary_pid, signal.SIGKILL)
    killed = time.monotonic()
    failed = 0
    while put(url, b"after") != 200:
        if time.monotonic() - killed > LIMIT_S:
            sys.exit(f"no write answered 200 within {LIMIT_S} s of the kill")
        failed += 1
        time.sleep(RETRY_S)
    print(json.dumps({"failover_ms": (time.monotonic() - killed) * 1000, "failed_writes": failed}))


if __name__ == "__main__":
    main()
