"""A linearizability checker for key-value histories.

Keys are independent registers, so a history is partitioned by key and
each part is checked on its own:

- :mod:`.linearizability_history` records operations (``History``,
  ``Operation``) and keeps them as JSON;
- :mod:`.linearizability_model` is the register the operations run against;
- :mod:`.linearizability_search` looks for a linearization: Porcupine's
  depth-first search (Wing & Gong with Lowe's memoisation), then a
  breadth-first search that never expands a dominated configuration;
- :mod:`.linearizability_report` holds the verdict and its explanation.

Unknown outcomes are what make such searches blow up, so the search also
prunes configurations dominated by one with fewer unknown operations used,
treats interchangeable unknown operations as one class, linearizes a read as
soon as it can, and leaves out unknown writes and deletes nobody could have
observed. An ``info`` operation is given a return at infinity, so
linearizing it after everything else stands for "never happened"; the
search therefore succeeds as soon as every ``ok`` operation is linearized.

Usage::

    h = History()
    i = h.invoke(client=1, op="write", key="k", arg="v1")
    h.ok(i)
    j = h.invoke(2, "read", "k")
    h.ok(j, "v1")
    assert check(h).ok

``python -m eraft_twisted.testing.linearizability HISTORY.json`` re-checks a
history kept by the fault-injection harness.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Iterable

from .linearizability_history import OPS, OUTCOMES, History, Operation
from .linearizability_model import unobserved
from .linearizability_report import Result, explain
from .linearizability_search import Search

__all__ = [
    "OPS",
    "OUTCOMES",
    "History",
    "Operation",
    "Result",
    "check",
    "check_key",
]


def check_key(key: str, ops: Iterable[Operation], budget: int | None = None) -> Result:
    """Check the history of one key (operations on other keys are ignored).

    A depth-first search (Porcupine's) settles most histories at once; if it
    has not within a couple of hundred steps per operation, a breadth-first
    search that never expands a dominated configuration, better at
    exhausting hard ones (a violation among many unknown operations), takes
    over. ``budget`` caps the steps of both together (None: no cap).
    """
    t0 = time.monotonic()
    # Failed operations did not happen, and a read of unknown outcome has no
    # effect: neither takes part in the search.
    todo = [
        o
        for o in ops
        if o.key == key and o.outcome != "fail" and not (o.op == "read" and o.outcome != "ok")
    ]
    useless = unobserved(todo)
    todo = [o for o in todo if o.id not in useless]
    search = Search(todo)
    first = 200 * len(todo) + 20_000
    verdict, prefix, state, blocked = search.dfs(first if budget is None else min(first, budget))
    if verdict is None and (budget is None or search.steps < budget):
        rest = None if budget is None else budget - search.steps
        verdict, prefix, state, blocked = search.bfs(rest)
    elapsed = time.monotonic() - t0
    n = len(todo)
    if verdict is None:
        return Result(
            False,
            key,
            f"key {key!r}: search budget of {budget} steps exhausted ({n} operations)",
            unknown=True,
            operations=n,
            keys=1,
            elapsed=elapsed,
        )
    if verdict:
        return Result(True, None, "", operations=n, keys=1, elapsed=elapsed)
    return Result(
        False,
        key,
        explain(key, todo, prefix, state, blocked),
        operations=n,
        keys=1,
        elapsed=elapsed,
    )


def check(history: History | Iterable[Operation], budget: int | None = None) -> Result:
    """Check every key; the first non-linearizable key (smallest first) is reported.

    ``budget`` caps the search steps per key (None: unlimited); running out
    gives ``Result(ok=False, unknown=True)``.
    """
    t0 = time.monotonic()
    ops = history.ops if isinstance(history, History) else list(history)
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for o in ops:
        by_key[o.key].append(o)
    per_key: dict[str, int] = {}
    unknown: Result | None = None
    for key in sorted(by_key):
        r = check_key(key, by_key[key], budget)
        per_key[key] = r.operations
        if not r.ok and not r.unknown:
            r.operations, r.keys, r.elapsed, r.per_key = (
                len(ops),
                len(by_key),
                time.monotonic() - t0,
                per_key,
            )
            return r
        if r.unknown and unknown is None:
            unknown = r
    elapsed = time.monotonic() - t0
    if unknown is not None:
        unknown.operations, unknown.keys, unknown.elapsed = len(ops), len(by_key), elapsed
        return unknown
    return Result(True, operations=len(ops), keys=len(by_key), elapsed=elapsed, per_key=per_key)


def main(argv: list[str] | None = None) -> int:
    """Re-check kept histories: ``python -m eraft_twisted.testing.linearizability FILE...``."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        sys.stderr.write("usage: python -m eraft_twisted.testing.linearizability HISTORY.json...\n")
        return 2
    status = 0
    for path in paths:
        r = check(History.load(path))
        print(f"{path}: {r.summary()}")
        if not r.ok:
            print(r.explanation)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
