"""Prints scripts/bench.sh's results as the table of docs/benchmarks.md:
a row for each performance goal, with whether it is met, then the followers
and failover (no goals; each row names its unit), then the other figures
no goal reads."""

import sys

# (row, KVS figure, anchor figure, goal). A goal is (what it reads, bound):
# "x" is KVS / anchor and at least the bound; "x<=" is KVS / anchor and at
# most the bound (lower is better); "s<=" is KVS's own figure in seconds.
# The rows of 1M keys are judged only when that many were measured
# (BENCH_LARGE_KEYS).
LARGE = "replay and memory keys"
# The followers and failover rows are named "replicas ..." (their CPU rows
# "cpu us/req replicas ..."); shown in the order they were measured.
REPLICAS = ("replicas ", "cpu us/req replicas ")
ROWS = [
    ("GET, uniform over 100k keys (wrk)", "kvs GET", "redis GET", ("x", 1.3)),
    ("GET, against the plain HTTP ceiling", "kvs GET", "bare axum GET", ("x", 0.9)),
    ("PUT sync, embedded file log", "kvs PUT sync", "redis SET fsync always", ("x", 1.2)),
    ("PUT async", "kvs PUT async", "webdis SET", ("x", 1.5)),
    ("PUT sync, txn-server + PostgreSQL", "kvs PUT sync, PostgreSQL", "pgbench 1-row INSERT", ("x", 2)),
    ("multi-key read, POST /txn of 16 gets (keys/s)", "kvs txn 16 gets keys/s", "redis GET pipelined 16", ("x", 0.5)),
    ("RSS, 1M keys 16 B + 32 B (MB; lower is better)", "kvs RSS 1M keys MB", "redis used_memory_rss MB", ("x<=", 0.7), LARGE),
    ("replay 1M, file (s)", "kvs replay 1M, file s", None, ("s<=", 0.25), LARGE),
    ("replay 1M, PostgreSQL (s)", "kvs replay 1M, PostgreSQL s", None, ("s<=", 1.5), LARGE),
    ("PUT sync p99 latency, file log (ms; lower is better)", "kvs PUT sync p99 ms", "redis SET fsync always p99 ms", ("x<=", 1)),
]


def goal_text(goal):
    kind, bound = goal
    return {"x": f"≥ {bound}x", "x<=": f"≤ {bound}x", "s<=": f"≤ {bound} s"}[kind]


def row(label, figures, ours, anchor, goal, large=None):
    """The cells of one row; the ratio and the mark are left empty when a
    figure is missing (BENCH_ANCHORS=0 measures no anchor)."""
    mine = figures.get(ours)
    theirs = figures.get(anchor) if anchor else None
    kind, bound = goal
    if kind == "s<=":
        measured = mine
    else:
        measured = mine / theirs if mine is not None and theirs else None
    met = "" if measured is None else ("yes" if (measured >= bound if kind == "x" else measured <= bound) else "no")
    if large and met and figures.get(large) != 1_000_000:
        met = f"not judged: {figures.get(large, 0):,.0f} keys"
    return [
        label,
        "" if mine is None else f"{mine:,.6g}",
        anchor or "",
        "" if theirs is None else f"{theirs:,.6g}",
        "" if measured is None or kind == "s<=" else f"{measured:.2f}x",
        goal_text(goal),
        met,
    ]


def main(path):
    figures = {}
    with open(path) as f:
        for line in f:
            name, value = line.rstrip("\n").split("\t")
            figures[name] = float(value)
    print("| workload, 50 connections | KVS | anchor | anchor figure | KVS / anchor | goal | met |")
    print("|---|---|---|---|---|---|---|")
    for label, ours, anchor, goal, *large in ROWS:
        print("| " + " | ".join(row(label, figures, ours, anchor, goal, *large)) + " |")
    shown = {r[1] for r in ROWS} | {r[2] for r in ROWS} | {LARGE}
    replicas = [name for name in figures if name.startswith(REPLICAS)]
    if replicas:
        print()
        print("| followers and failover, txn-server + PostgreSQL | |")
        print("|---|---|")
        for name in replicas:
            print(f"| {name} | {figures[name]:,.6g} |")
    shown |= set(replicas)
    print()
    print("| other figures | |")
    print("|---|---|")
    for name in sorted(set(figures) - shown):
        print(f"| {name} | {figures[name]:,.6g} |")


if __name__ == "__main__":
    main(sys.argv[1])
