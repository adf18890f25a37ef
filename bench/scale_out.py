"""Benchmark: SET throughput before and after scaling out from 1 to 2 shard groups.

    .venv/bin/python bench/scale_out.py -n 20000

Starts a meta group, shard group 1 and a router; runs ``redis-benchmark -t
set`` (50 clients, random keys) through the router and, cluster-aware
(``--cluster``), straight against the groups' leaders. Then starts group 2,
rebalances, waits for the data to move, and runs the same again. For each
run it prints the requests/s and how the writes spread over the groups
(entries each group's leader applied during the run).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.kdb.sharded import Deployment  # noqa: E402


def benchmark(port: int, n: int, clients: int, cluster: bool) -> tuple[float, float]:
    """(requests/s, p50 ms) of one ``redis-benchmark -t set`` run."""
    argv = ["redis-benchmark", "-p", str(port), "-t", "set", "-n", str(n), "-c", str(clients),
            "-r", "1000000", "--csv"]  # fmt: skip
    if cluster:
        argv.append("--cluster")
    out = subprocess.run(argv, capture_output=True, check=True, timeout=600).stdout.decode()
    # --cluster prints the masters it found before the CSV.
    rows = [r for r in csv.reader(io.StringIO(out)) if r]
    start = next(i for i, r in enumerate(rows) if r[0] == "test")
    row = dict(zip(rows[start], rows[start + 1], strict=False))
    return float(row["rps"]), float(row["p50_latency_ms"])


def applied(d: Deployment) -> dict[int, int]:
    """Each group's applied index on its leader."""
    return {
        gid: int(d.info(cluster.leader(), "raft")["raft_applied_index"])
        for gid, cluster in d.groups.items()
    }


def run(d: Deployment, label: str, n: int, clients: int, cluster: bool) -> dict[str, Any]:
    before = applied(d)
    port = d.groups[1].leader().resp_port if cluster else d.router_port
    # redis-benchmark --cluster wants 2+ masters; with one group, its
    # leader is all a cluster-aware client would talk to anyway.
    rps, p50 = benchmark(port, n, clients, cluster and len(d.groups) > 1)
    after = applied(d)
    total = sum(after[g] - before.get(g, 0) for g in after) or 1
    share = {g: (after[g] - before.get(g, 0)) / total for g in sorted(after)}
    return {"groups": label, "via": "cluster-aware client" if cluster else "router",
            "rps": rps, "p50": p50, "share": share}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000, help="requests per run")
    ap.add_argument("-c", type=int, default=50, help="concurrent clients")
    args = ap.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark is not installed (apt-get install redis-tools)")

    workdir = tempfile.mkdtemp(prefix="eraft-scale-")
    d = Deployment(base=workdir)
    results = []
    try:
        d.start_meta()
        d.start_group(1)
        d.wait(lambda: d.settled(1), "group 1 registered")
        d.start_router()
        for cluster in (False, True):
            results.append(run(d, "1", args.n, args.c, cluster))
        d.start_group(2)
        d.wait(lambda: "2" in d.admin("GET", "/config")["groups"], "group 2 joined")
        d.admin("POST", "/rebalance", {})
        num = d.admin("GET", "/config")["num"]
        d.wait(lambda: d.settled(num), f"config {num} settled", timeout=300)
        for cluster in (False, True):
            results.append(run(d, "2", args.n, args.c, cluster))
    finally:
        d.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; groups of 3 nodes, fsync always, {args.c} clients"
    )
    print("| groups | clients through | SET req/s | p50 ms | writes applied per group |")
    print("|---|---|---|---|---|")
    for r in results:
        share = ", ".join(f"g{g} {v:.0%}" for g, v in r["share"].items())
        print(f"| {r['groups']} | {r['via']} | {r['rps']:,.0f} | {r['p50']:.2f} | {share} |")


if __name__ == "__main__":
    main()
