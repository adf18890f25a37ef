"""The simulation's command line.

Replay one seed verbosely, or run many on several processes::

    python -m eraft_twisted.testing.sim --seed 1234 --nodes 5 --membership
    python -m eraft_twisted.testing.sim --seeds 20000 --jobs 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator

from . import sim
from .sim import Simulation, run_seed, seed_params
from .sim_types import SimParams, Violation


def _run_one(params: SimParams) -> tuple[SimParams, str | None, float]:
    t0 = time.perf_counter()
    try:
        run_seed(params)
        return params, None, time.perf_counter() - t0
    except Violation as v:
        return params, str(v), time.perf_counter() - t0


def run_many(
    params: list[SimParams], jobs: int = 1
) -> Iterator[tuple[SimParams, str | None, float]]:
    """Run many scenarios, on ``jobs`` processes; yields (params, failure, seconds)."""
    if jobs <= 1:
        for p in params:
            yield _run_one(p)
        return
    ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    with ctx.Pool(jobs) as pool:
        yield from pool.imap_unordered(_run_one, params, chunksize=8)


def _replay(args: argparse.Namespace) -> int:
    params = SimParams(args.seed, args.nodes or 3, bool(args.membership), args.ticks)
    t0 = time.perf_counter()
    sim = Simulation(params)
    try:
        stats = sim.run()
    except Violation as v:
        print(f"VIOLATION: {v}")
        if args.verbose:
            print(sim.describe())
        return 1
    print(f"ok seed={args.seed} in {time.perf_counter() - t0:.2f}s: {stats.line()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: replay one seed, or run many."""
    p = argparse.ArgumentParser(prog="python -m eraft_twisted.testing.sim", description=sim.__doc__)
    p.add_argument("--seed", type=int, help="run this one seed (verbose)")
    p.add_argument("--seeds", type=int, default=0, help="run this many seeds")
    p.add_argument("--start", type=int, default=0, help="first seed of --seeds")
    p.add_argument("--nodes", type=int, help="3 or 5 (default: alternate)")
    p.add_argument("--membership", action="store_true", default=None)
    p.add_argument("--no-membership", dest="membership", action="store_false")
    p.add_argument("--ticks", type=int, default=SimParams.ticks)
    p.add_argument("-v", "--verbose", action="store_true", help="dump node state on failure")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    if args.seed is not None:
        return _replay(args)
    n = args.seeds or 100
    todo = [
        seed_params(s, args.nodes, args.membership, args.ticks)
        for s in range(args.start, args.start + n)
    ]
    t0 = time.perf_counter()
    failures = 0
    done = 0
    for _params, failure, _ in run_many(todo, args.jobs):
        done += 1
        if failure is not None:
            failures += 1
            print(f"VIOLATION: {failure}", flush=True)
        if done % 1000 == 0:
            print(
                f"{done}/{n} seeds, {failures} failed, {time.perf_counter() - t0:.0f}s", flush=True
            )
    elapsed = time.perf_counter() - t0
    print(
        f"{n} seeds ({args.start}..{args.start + n - 1}), {failures} failed, "
        f"{elapsed:.1f}s on {args.jobs} processes"
    )
    return 1 if failures else 0
