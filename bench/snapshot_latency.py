"""Benchmark: client latency while a big snapshot is taken and streamed.

Loads a 3-node group with ``--keys`` keys, then measures SET+GET latency of
one client (a) with nothing else going on and (b) while a follower that
missed the whole load catches up through a snapshot of all those keys
(LevelDB snapshot read in a thread, streamed in acknowledged chunks).
Prints p50/p99/max for both and how long the catch-up took. Not a test.

    .venv/bin/python bench/snapshot_latency.py [--keys 200000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.procs import Cluster, Node  # noqa: E402


def measure(node: Node, seconds: float, stop: threading.Event | None = None) -> list[float]:
    """Latencies (ms) of SET then GET pairs for ``seconds`` or until ``stop``."""
    c = node.client(timeout=10)
    lat: list[float] = []
    end = time.time() + seconds
    i = 0
    while time.time() < end and not (stop and stop.is_set()):
        t0 = time.perf_counter()
        c.set(f"probe:{i % 100}", i)
        c.get(f"probe:{i % 100}")
        lat.append((time.perf_counter() - t0) * 1000)
        i += 1
    return lat


def summary(name: str, lat: list[float]) -> str:
    q = statistics.quantiles(lat, n=100)
    return f"| {name} | {len(lat)} | {statistics.median(lat):.2f} | {q[98]:.2f} | {max(lat):.2f} |"


def raft_info(node: Node) -> dict[str, str]:
    text = node.client().execute_command("RAFT.INFO").decode()
    return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--value-size", type=int, default=100)
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="eraft-snapbench-")
    cluster = Cluster(3, extra=["--snapshot-entries", "5000"], base=workdir)
    try:
        cluster.start()
        leader = cluster.leader()
        lagging = next(n for n in cluster.nodes if n is not leader)
        lagging.kill()
        value = b"v" * args.value_size
        c = leader.client(timeout=60)
        t0 = time.time()
        for start in range(0, args.keys, 10_000):
            pipe = c.pipeline(transaction=False)
            for i in range(start, min(args.keys, start + 10_000), 100):
                pipe.mset({f"key:{j}": value for j in range(i, min(args.keys, i + 100))})
            pipe.execute()
        load = time.time() - t0
        # Compact everything: the follower can only catch up by snapshot.
        c.execute_command("RAFT.SNAPSHOT")
        print(
            f"loaded {args.keys} keys in {load:.1f}s; leader log starts at "
            f"{raft_info(leader)['raft_first_index']}"
        )

        baseline = measure(leader, 10)

        stop = threading.Event()
        during: list[float] = []
        prober = threading.Thread(target=lambda: during.extend(measure(leader, 600, stop)))
        prober.start()
        t0 = time.time()
        lagging.start()
        lagging.wait_up(60)
        while lagging.client(timeout=60).dbsize() < args.keys:
            time.sleep(0.2)
        catch_up = time.time() - t0
        stop.set()
        prober.join()
        print(
            f"follower caught up through a snapshot of {args.keys} keys in {catch_up:.1f}s "
            f"(its log starts at {raft_info(lagging)['raft_first_index']})"
        )
        print("| phase | ops | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|")
        print(summary("no snapshot", baseline))
        print(summary("snapshot streaming", during))
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
