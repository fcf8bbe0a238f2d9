#!/usr/bin/env python3
"""A follower's lag behind the primary, in milliseconds: for SECONDS, PUTs a
probe key on the primary, takes the KVS-Revision it was answered with, and
GETs the key on the follower with KVS-Min-Revision of that revision (the
follower waits until it has applied it; a 503 after its wait is asked
again), timing from the PUT's answer to the follower's 200. Halfway through,
reads the follower's kvs_follow_lag_revisions from its /metrics once.
Prints JSON: the number of samples, their median and p99, and that gauge.

    follow-lag.py PRIMARY-URL FOLLOWER-URL SECONDS

The URLs are nodes' base URLs (http://127.0.0.1:PORT); one keep-alive
connection to each.
"""

import http.client
import json
import statistics
import sys
import time
import urllib.parse

API = "/kvs/v1-0-0"
KEY = f"{API}/str/bench_follow_lag"
MIN_SAMPLES = 100
# A follower that has not caught up within this long is stuck, not lagging.
STUCK_S = 60


def connect(url):
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=STUCK_S)


def call(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp, resp.read()


def lag_revisions(url):
    conn = connect(url)
    try:
        resp, body = call(conn, "GET", f"{API}/metrics")
    finally:
        conn.close()
    if resp.status != 200:
        sys.exit(f"{url}/metrics answered {resp.status}")
    for line in body.decode().splitlines():
        if line.startswith("kvs_follow_lag_revisions "):
            return float(line.split()[1])
    sys.exit(f"no kvs_follow_lag_revisions in {url}/metrics")


def sample(primary, follower, value):
    resp, body = call(primary, "PUT", KEY, body=value)
    if resp.status != 200:
        sys.exit(f"the primary answered the probe's PUT {resp.status}: {body!r}")
    revision = resp.getheader("KVS-Revision")
    put_answered = time.monotonic()
    while True:
        resp, body = call(follower, "GET", KEY, headers={"KVS-Min-Revision": revision})
        if resp.status == 200:
            lag_ms = (time.monotonic() - put_answered) * 1000
            break
        if resp.status != 503 or time.monotonic() - put_answered > STUCK_S:
            sys.exit(f"the follower answered {resp.status} for revision {revision}: {body!r}")
    if body != value:
        sys.exit(f"the follower gave {body!r} at revision {revision}, not {value!r}")
    return lag_ms


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    primary_url, follower_url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    primary, follower = connect(primary_url), connect(follower_url)
    start = time.monotonic()
    lags, gauge = [], None
    while time.monotonic() - start < seconds:
        lags.append(sample(primary, follower, str(len(lags)).encode()))
        if gauge is None and time.monotonic() - start >= seconds / 2:
            gauge = lag_revisions(follower_url)
    if len(lags) < MIN_SAMPLES:
        sys.exit(f"{len(lags)} samples in {seconds} s, fewer than {MIN_SAMPLES}")
    print(
        json.dumps(
            {
                "samples": len(lags),
                "lag_ms_median": statistics.median(lags),
                "lag_ms_p99": statistics.quantiles(lags, n=100)[98],
                "lag_revisions_midway": gauge,
            }
        )
    )


if __name__ == "__main__":
    main()
