"""What the long fault campaigns' command lines share (``bench/jepsen.py``
and ``bench/jepsen_collections.py``): the nemesis mixes they cycle
through, their options, the seed and mix of each run."""

from __future__ import annotations

import argparse
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, TypedDict, TypeVar

from eraft_twisted.testing.nemesis import FAULTS, NETWORK_FAULTS

# Membership changes make a node reachable without the proxy (see
# Nemesis._member), so they run in mixes without network faults.
MIXES = [
    list(NETWORK_FAULTS),
    ["kill", "pause", "transfer", "snapshot"],
    ["member", "kill", "pause", "transfer"],
    [f for f in FAULTS if f != "member"],
]


def parser(
    doc: str | None, seconds: float, seconds_help: str, run_seconds: float
) -> argparse.ArgumentParser:
    """A parser with ``--seconds`` and ``--run-seconds``; a bench adds its
    own options, then :func:`add_run_options`."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=seconds, help=seconds_help)
    p.add_argument("--run-seconds", type=float, default=run_seconds, help="length of one run")
    return p


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of every run: faults, overlap, nodes, clients, seed, keep."""
    p.add_argument("--faults", help=f"comma-separated, from {','.join(FAULTS)} (default: cycle)")
    p.add_argument("--overlap", action="store_true", help="network and process faults overlap")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seed", type=int, help="seed of the first run (then +1 per run)")
    p.add_argument("--keep", help="directory for failure artifacts (default: temp dir)")


def make_keep_dir(args: argparse.Namespace) -> None:
    """Create ``--keep`` if given."""
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)


def first_seed(args: argparse.Namespace) -> int:
    """``--seed``, or a random one."""
    return args.seed if args.seed is not None else random.randrange(2**32)


def mix(args: argparse.Namespace, k: int) -> tuple[list[str], bool]:
    """The faults of the ``k``-th mix (``--faults`` if given) and whether
    they overlap: with ``--overlap``, or in the last mix of the cycle,
    which has both network and process faults."""
    k %= len(MIXES)
    faults = args.faults.split(",") if args.faults else MIXES[k]
    return faults, args.overlap or (not args.faults and k == len(MIXES) - 1)


class RunArgs(TypedDict):
    """The arguments of every run that come from the command line."""

    seed: int
    nodes: int
    clients: int
    keep_dir: str | None


def run_args(args: argparse.Namespace, seed: int) -> RunArgs:
    """``seed`` and ``--nodes``, ``--clients``, ``--keep`` for one run."""
    return RunArgs(seed=seed, nodes=args.nodes, clients=args.clients, keep_dir=args.keep)


class Run(Protocol):
    """What :func:`run_series` and :func:`totals` need of a run's result."""

    @property
    def seconds(self) -> float: ...

    @property
    def ok(self) -> bool: ...

    @property
    def operations(self) -> int: ...

    @property
    def faults(self) -> Mapping[str, int]: ...


R = TypeVar("R", bound=Run)


def run_series(args: argparse.Namespace, one: Callable[[int, float], R]) -> list[R]:
    """``one(k, seconds)`` for k = 0, 1, ... (each run at most
    ``--run-seconds``) until no more than 5 s of ``--seconds`` are left;
    stdout is flushed after each run."""
    results: list[R] = []
    left = args.seconds
    while left > 5:
        r = one(len(results), min(args.run_seconds, left))
        sys.stdout.flush()
        results.append(r)
        left -= r.seconds
    return results


def totals(results: Sequence[Run]) -> tuple[int, int, int, Counter[str]]:
    """(runs, failed runs, operations, faults of each kind) of ``results``."""
    bad = sum(1 for r in results if not r.ok)
    ops = sum(r.operations for r in results)
    return len(results), bad, ops, add_counts(r.faults for r in results)


def add_counts(counts: Iterable[Mapping[str, int]]) -> Counter[str]:
    """The sum of ``counts``."""
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return total


def counts_text(counts: Mapping[str, int]) -> str:
    """``"kill 3, pause 2"``."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
