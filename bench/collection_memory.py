"""Memory: a huge hash and a huge sorted set on a 3-node group.

Starts a 3-node eraftkv group, warms it up (``--warmup-mb`` of string
values, so the bounded caches, the Raft log cache and LevelDB's block
cache, are in use before the measurement starts), notes every node's RSS,
then HSETs ``-n`` fields into one hash (1,000 per command) and ZADDs ``-n``
members into one sorted set, waits until every node has applied them, and
prints each node's RSS growth. A collection is rows on disk, not a
structure in RAM, so the growth should not depend on ``-n``. Not a test:
``tests/test_memory_bound.py`` checks a smaller volume in CI.

    .venv/bin/python bench/collection_memory.py [-n 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.procs import Cluster  # noqa: E402
from tests.test_memory_bound import MIB, raft_index, rss, wait_all_applied  # noqa: E402

BATCH = 1000


def rss_all(cluster: Cluster) -> list[int]:
    return [rss(n.proc.pid)[0] if n.proc is not None else 0 for n in cluster.nodes]


def load(cluster: Cluster, command: str, key: str, n: int) -> float:
    """Seconds to write ``n`` fields/members to ``key`` (pipelined batches),
    until every node has applied them."""
    client = cluster.leader().client(timeout=120)
    started = time.monotonic()
    pipe = client.pipeline(transaction=False)
    for start in range(0, n, BATCH):
        args: list[object] = []
        for i in range(start, min(n, start + BATCH)):
            if command == "HSET":
                args += [f"field:{i:09d}", f"value:{i}"]
            else:
                args += [i * 0.5, f"member:{i:09d}"]
        pipe.execute_command(command, key, *args)
        if len(pipe) >= 16:
            pipe.execute()
    pipe.execute()
    wait_all_applied(cluster, raft_index(cluster.leader(), "commit"), f"{command} {key}")
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="fields / members per collection")
    ap.add_argument("--warmup-mb", type=int, default=200, help="string data written first")
    args = ap.parse_args()
    cluster = Cluster(3)
    try:
        cluster.start()
        client = cluster.leader().client(timeout=120)
        blob = os.urandom(64 * 1024)
        pipe = client.pipeline(transaction=False)
        for i in range(args.warmup_mb * 16):
            pipe.set(f"warm:{i}", blob)
            if len(pipe) >= 16:
                pipe.execute()
        pipe.execute()
        wait_all_applied(cluster, raft_index(cluster.leader(), "commit"), "warm-up")
        for i in range(0, args.warmup_mb * 16, 7):  # read some back: the block cache
            client.get(f"warm:{i}")
        before = rss_all(cluster)
        rows = [("before", before, 0.0)]
        seconds = load(cluster, "HSET", "big:hash", args.n)
        rows.append((f"after HSET of {args.n:,} fields", rss_all(cluster), seconds))
        seconds = load(cluster, "ZADD", "big:zset", args.n)
        rows.append((f"after ZADD of {args.n:,} members", rss_all(cluster), seconds))
        assert client.hlen("big:hash") == args.n and client.zcard("big:zset") == args.n
        print("| stage | node VmRSS MiB | growth MiB | seconds |")
        print("|---|---|---|---|")
        for name, values, secs in rows:
            growth = [(v - b) / MIB for v, b in zip(values, before, strict=True)]
            print(
                f"| {name} | {', '.join(f'{v / MIB:.0f}' for v in values)} | "
                f"{', '.join(f'{g:+.0f}' for g in growth)} | {secs:.0f} |"
            )
    finally:
        cluster.stop()
        shutil.rmtree(cluster.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
