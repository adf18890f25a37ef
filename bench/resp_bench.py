"""Benchmark: a 3-node eraftkv group against redis-server, both fsyncing.

Starts a 3-node group (``--fsync always``) and ``redis-server --appendonly
yes --appendfsync always`` on free ports, runs ``redis-benchmark -t set,get``
with 1 and 50 clients against each, and prints a table with ours/redis
ratios. Not a test: run it by hand and copy the table into the README.

    .venv/bin/python bench/resp_bench.py [-n 20000] [--fsync always|never]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.procs import Cluster, free_ports  # noqa: E402


def redis_benchmark(port: int, test: str, n: int, clients: int) -> tuple[float, float]:
    """(requests/s, p50 latency ms) of one redis-benchmark run."""
    out = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-t",
            test,
            "-n",
            str(n),
            "-c",
            str(clients),
            "-r",
            "100000",
            "--csv",
        ],
        capture_output=True,
        check=True,
        timeout=600,
    ).stdout.decode()
    rows = list(csv.reader(io.StringIO(out)))
    # lrange_100 first runs the LPUSH it needs: its own figure is the last row.
    header, values = rows[0], rows[-1]
    row = dict(zip(header, values, strict=False))
    return float(row["rps"]), float(row["p50_latency_ms"])


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    (port,) = free_ports(1)
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            workdir,
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        r = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True)
        if r.stdout.strip() == b"PONG":
            return proc, port
        time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


Result = tuple[str, int, tuple[float, float], tuple[float, float]]


def run_group(tests: list[str], args: argparse.Namespace) -> list[Result]:
    """Run ``tests`` in order against one new 3-node group and one new
    redis-server."""
    workdir = tempfile.mkdtemp(prefix="eraft-bench-")
    cluster = Cluster(3, extra=["--fsync", args.fsync], base=workdir)
    redis_proc, redis_port = start_redis(workdir)
    try:
        cluster.start()
        leader = cluster.leader()
        target = leader
        if args.node == "follower":
            target = next(n for n in cluster.nodes if n is not leader)
        results: list[Result] = []
        for test in tests:
            for clients in (int(c) for c in args.clients.split(",")):
                n = args.n if clients > 1 else max(1000, args.n // 10)
                ours = redis_benchmark(target.resp_port, test, n, clients)
                theirs = redis_benchmark(redis_port, test, n, clients)
                results.append((test.upper(), clients, ours, theirs))
        return results
    finally:
        cluster.stop()
        redis_proc.terminate()
        redis_proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000, help="requests per run")
    ap.add_argument("--fsync", default="always", choices=["always", "never"])
    ap.add_argument(
        "--node",
        default="leader",
        choices=["leader", "follower"],
        help="which eraftkv node the benchmark talks to (a follower forwards writes)",
    )
    ap.add_argument(
        "--tests",
        default="set,get",
        help="redis-benchmark tests, e.g. set,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,"
        "zpopmin,lrange_100 (each is compared with SET's figure of the same run)",
    )
    ap.add_argument("--clients", default="1,50", help="client counts to run each test with (1,50)")
    ap.add_argument(
        "--fresh",
        action="store_true",
        help="a new group for each test (a pop test shares one with the push that fills it: "
        "lpush+lpop, rpush+rpop, sadd+spop, zadd+zpopmin), so no test runs on what the "
        "earlier ones left (a bigger database, LevelDB compacting); each group runs SET "
        "first, and a test's 'vs SET' is against the median of those SET figures",
    )
    args = ap.parse_args()
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install redis-server redis-tools)")

    tests = args.tests.split(",")
    fills = {"lpop": "lpush", "rpop": "rpush", "spop": "sadd", "zpopmin": "zadd"}
    groups: list[list[str]] = []
    # A pop test always runs right after its push: without it, it would
    # measure pops on a missing key.
    with_fills: list[str] = []
    for test in tests:
        if test in fills and with_fills[-1:] != [fills[test]]:
            with_fills.append(fills[test])
        with_fills.append(test)
    tests = with_fills
    for test in tests:
        if args.fresh and groups and fills.get(test) == groups[-1][-1]:
            groups[-1].append(test)
        elif args.fresh or not groups:
            groups.append([test])
        else:
            groups[-1].append(test)
    results = []
    group_sets: dict[int, list[float]] = {}
    for group in groups:
        if args.fresh and group != ["set"]:
            # Each group measures SET first, so every group's SET figure is
            # taken on a new group, like the tests'.
            got = run_group(["set", *group], args)
            for t, c, ours, _ in got:
                if t == "SET":
                    group_sets.setdefault(c, []).append(ours[0])
            got = [r for r in got if r[0] != "SET"]
        else:
            got = run_group(group, args)
        results.extend(got)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; eraftkv: 3 nodes, fsync {args.fsync}, "
        f"clients on the {args.node}; "
        f"redis-server: appendfsync always"
    )
    set_rps = {c: ours[0] for t, c, ours, _ in results if t == "SET"}
    for c, figures in sorted(group_sets.items()):
        # One SET run moves by 10-20% from run to run: the median of the
        # run's SET figures is the steadier yardstick.
        set_rps[c] = statistics.median(figures)
        print(
            f"SET, {c} clients: median {set_rps[c]:,.0f} req/s of {len(figures)} groups "
            f"({min(figures):,.0f}-{max(figures):,.0f})"
        )
    print(
        "| test | clients | eraftkv req/s | vs SET | redis req/s | ratio | eraftkv p50 ms "
        "| redis p50 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for test, clients, (ours_rps, ours_p50), (redis_rps, redis_p50) in results:
        shown = f"{ours_rps / set_rps[clients]:.2f}x" if clients in set_rps else "-"
        print(
            f"| {test} | {clients} | {ours_rps:,.0f} | {shown} | {redis_rps:,.0f} | "
            f"{ours_rps / redis_rps:.2f}x | {ours_p50:.2f} | {redis_p50:.2f} |"
        )


if __name__ == "__main__":
    main()
