"""Prints scripts/bench.sh's results as the table of docs/benchmarks.md."""

import sys

# (KVS figure, its anchor, how the goal reads the ratio)
ROWS = [
    ("GET, uniform over 100k keys", "kvs GET", "redis GET", "higher"),
    ("PUT sync, embedded file log", "kvs PUT sync", "redis SET fsync always", "higher"),
    ("PUT sync, txn-server + PostgreSQL", "kvs PUT sync, PostgreSQL", "pgbench 1-row INSERT", "higher, goal 2x"),
    ("PUT async", "kvs PUT async", "webdis SET", "higher"),
    ("mixed 90% GET, zipfian 0.99 (kvs-bench)", "kvs mixed zipf", None, "no anchor"),
    ("replay 1M, file (s)", "kvs replay 1M, file s", None, "goal < 1 s"),
    ("replay 1M, PostgreSQL (s)", "kvs replay 1M, PostgreSQL s", None, "goal < 5 s"),
    ("RSS, 1M keys 16 B + 32 B (MB)", "kvs RSS 1M keys MB", "redis used_memory_rss MB", "lower"),
]


def main(path):
    figures = {}
    with open(path) as f:
        for line in f:
            name, value = line.rstrip("\n").split("\t")
            figures[name] = float(value)
    print("| workload | KVS | anchor | anchor figure | KVS / anchor | goal |")
    print("|---|---|---|---|---|---|")
    for label, ours, anchor, goal in ROWS:
        if ours not in figures:
            continue
        mine = figures[ours]
        if anchor and anchor in figures:
            theirs = figures[anchor]
            ratio = f"{mine / theirs:.2f}x"
            print(f"| {label} | {mine:,.6g} | {anchor} | {theirs:,.6g} | {ratio} | {goal} |")
        else:
            print(f"| {label} | {mine:,.6g} | | | | {goal} |")
    rest = sorted(set(figures) - {r[1] for r in ROWS} - {r[2] for r in ROWS})
    for name in rest:
        print(f"| {name} | | | {figures[name]:,.6g} | | |")


if __name__ == "__main__":
    main(sys.argv[1])
