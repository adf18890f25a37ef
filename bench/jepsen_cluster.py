"""The sharded-cluster fault campaign (``make jepsen-cluster SECONDS=600``).

    .venv/bin/python bench/jepsen_cluster.py --seconds 600
    .venv/bin/python bench/jepsen_cluster.py --seconds 120 --seed 42     # replay a seed
    .venv/bin/python bench/jepsen_cluster.py --seconds 60 --faults kill,term --no-moves

Each run starts a fresh cluster on 127.0.0.1 (3 meta nodes, two kv groups
of 3 behind fault-injecting proxies, the router), runs clients through the
router and straight to the kv nodes for ``--run-seconds`` while the nemesis
kills (-9 and SIGTERM) and restarts every kind of process, pauses them,
partitions kv groups, transfers leaders and takes snapshots, and slot
ranges move between the groups all along; then it heals, waits until no
migration is in flight, reads every key back through the router and
checks every history (strict linearizability), every counter's bounds,
TTLs and filler keys. Each run prints one line; the last line sums them
up. A failing run keeps its history, nemesis log and every process's log
in a directory it names (under ``--keep``). Exit status 1 if anything
failed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eraft_twisted.testing.cluster_campaign import run_cluster_campaign  # noqa: E402
from eraft_twisted.testing.cluster_nemesis import FAULTS  # noqa: E402
from eraft_twisted.testing.cluster_procs import KV_ARGS  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=120, help="seconds of faults in all")
    p.add_argument("--run-seconds", type=float, default=120, help="length of one run")
    p.add_argument("--faults", help=f"comma-separated, from {','.join(FAULTS)} (default: all)")
    p.add_argument("--no-moves", action="store_true", help="do not move slot ranges")
    p.add_argument("--router-clients", type=int, default=6)
    p.add_argument("--direct-clients", type=int, default=4)
    p.add_argument("--filler", type=int, default=5000, help="extra keys, checked at the end")
    p.add_argument(
        "--kv-args",
        help=f"arguments of every eraftkv (default: {' '.join(KV_ARGS)!r})",
    )
    p.add_argument("--seed", type=int, help="seed of the first run (then +1 per run)")
    p.add_argument("--keep", help="directory for failure artifacts (default: temp dir)")
    p.add_argument("--keep-always", action="store_true", help="keep artifacts of good runs too")
    p.add_argument("-v", "--verbose", action="store_true", help="print each run's client errors")
    args = p.parse_args(argv)
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    faults = args.faults.split(",") if args.faults else list(FAULTS)

    t0 = time.monotonic()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    ops = moves = runs = bad = 0
    expiring = [0, 0, 0]
    outcomes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    check_time = 0.0
    left = args.seconds
    failures: list[str] = []
    while left > 5 or runs == 0:
        r = run_cluster_campaign(
            seconds=min(args.run_seconds, left),
            faults=faults,
            seed=seed + runs,
            router_clients=args.router_clients,
            direct_clients=args.direct_clients,
            filler=args.filler,
            moves=not args.no_moves,
            kv_args=args.kv_args.split() if args.kv_args else None,
            keep_dir=args.keep,
            keep_always=args.keep_always,
        )
        if args.verbose:
            for text, n in sorted(r.errors.items(), key=lambda kv: -kv[1]):
                print(f"  {n:6d} {text}")
            print(f"  {r.redirects:6d} MOVED followed by direct clients")
        sys.stdout.flush()
        runs += 1
        ops += r.operations
        moves += r.moves
        expiring = [a + b for a, b in zip(expiring, r.expiring, strict=True)]
        outcomes.update(r.outcomes)
        counts.update(r.faults)
        check_time += r.check.elapsed
        left -= r.seconds
        if not r.ok:
            bad += 1
            failures.append(f"seed {r.seed}: {r.verdict()} (kept in {r.kept})")
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    verdict = "all linearizable" if not bad else f"{bad} runs FAILED: " + "; ".join(failures)
    print(
        f"jepsen cluster campaign: {runs} runs, {args.seconds:.0f}s of faults, {ops} operations "
        f"({', '.join(f'{v} {k}' for k, v in sorted(outcomes.items()))}), "
        f"{sum(counts.values())} faults ({summary}), {moves} range moves completed, "
        f"{expiring[0]} keys expired under reads ({expiring[1]} reads saw them alive, "
        f"{expiring[2]} expired); result: {verdict}; checker {check_time:.1f}s; wall {time.monotonic() - t0:.0f}s "
        f"[seeds {seed}..{seed + runs - 1}]"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
