"""Histories and checkers of the collection and transaction campaigns.

A :class:`Recorder` keeps every client operation as an :class:`Op` with its
invoke and completion positions in one real-time order. The checkers are
pure functions of those operations (and the final reads after the heal);
each returns a list of problems, empty when the history is correct.

* :func:`check_sets`: SADD of unique values, SMEMBERS reads.
* :func:`check_lists`: RPUSH of unique values, LRANGE 0 -1 reads.
* :func:`check_transfers`: WATCH/MULTI/EXEC transfers between accounts,
  reads of every account in one transaction (or MGET).
* :func:`check_queue`: RPUSH of unique values, BLPOP consumers.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

__all__ = [
    "Op",
    "Recorder",
    "check_lists",
    "check_queue",
    "check_sets",
    "check_transfers",
]

Value = str | int | list[int] | None
Result = int | list[str] | list[int | None] | None

MAX_PROBLEMS = 20


@dataclass
class Op:
    """One client operation.

    ``kind``: ``add`` (SADD/RPUSH of ``value``; result: the reply integer),
    ``read`` (result: the members/elements, or the balances), ``transfer``
    (value: [balance a read, balance b read, amount]; result: EXEC's reply),
    ``push`` (RPUSH of ``value`` to a queue ``key``), ``pop`` (BLPOP of the
    keys in ``key``, comma-separated; result: [key, value]; a nil reply,
    certainly nothing taken, is ``fail``).
    ``outcome``: ``ok``, ``fail`` (certainly not applied), ``info``
    (unknown) or ``pending`` (never completed: unknown too).
    """

    client: int
    kind: str
    key: str
    value: Value
    invoke: int
    outcome: str = "pending"
    result: Result = None
    complete: int | None = None
    error: str = ""
    final: bool = False


@dataclass
class Recorder:
    """Thread-safe list of operations with one event order."""

    ops: list[Op] = field(default_factory=list)
    _clock: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, client: int, kind: str, key: str, value: Value = None) -> Op:
        with self._lock:
            op = Op(client, kind, key, value, self._clock)
            self._clock += 1
            self.ops.append(op)
            return op

    def done(self, op: Op, outcome: str, result: Result = None, error: str = "") -> None:
        with self._lock:
            # The outcome last: a checker may look while clients run.
            op.result = result
            op.error = error
            op.complete = self._clock
            op.outcome = outcome
            self._clock += 1

    def counts(self) -> dict[str, int]:
        """``<kind> <outcome>`` -> how many."""
        with self._lock:
            return dict(Counter(f"{op.kind} {op.outcome}" for op in self.ops))

    def dump(self, path: str) -> None:
        """Write the operations as JSON, one a line."""
        with self._lock, open(path, "w") as f:
            f.write("[\n" + ",\n".join(json.dumps(asdict(op)) for op in self.ops) + "\n]\n")


def _by_key(ops: Iterable[Op]) -> dict[str, list[Op]]:
    out: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        out[op.key].append(op)
    return out


def _reads(ops: Sequence[Op]) -> list[Op]:
    return [op for op in ops if op.kind == "read" and op.outcome == "ok"]


def _strings(op: Op) -> list[str]:
    assert isinstance(op.result, list)
    return [str(v) for v in op.result]


def _required(ops: Sequence[Op], seen: bool) -> list[tuple[Op, set[str]]]:
    """For each ok read (in invoke order): the values it must contain, those
    of adds acknowledged before it was invoked (and, with ``seen``, those a
    read that completed before it was invoked returned)."""
    known: list[tuple[int, list[str]]] = []
    for op in ops:
        if op.outcome != "ok" or op.complete is None:
            continue
        if op.kind == "add":
            known.append((op.complete, [str(op.value)]))
        elif op.kind == "read" and seen:
            known.append((op.complete, _strings(op)))
    known.sort(key=lambda x: x[0])
    out = []
    have: set[str] = set()
    i = 0
    for read in sorted(_reads(ops), key=lambda o: o.invoke):
        while i < len(known) and known[i][0] < read.invoke:
            have.update(known[i][1])
            i += 1
        out.append((read, set(have)))
    return out


def _stale_reads(key: str, ops: Sequence[Op], problems: list[str]) -> None:
    """Reads that miss a value acknowledged, or already read, before they
    were invoked."""
    for read, need in _required(ops, seen=True):
        missing = need - set(_strings(read))
        if missing:
            problems.append(
                f"{key}: read by client {read.client} (invoked at {read.invoke}) misses "
                f"{len(missing)} values acknowledged or read before, e.g. {min(missing)!r}"
            )


def _common(key: str, ops: Sequence[Op], final: dict[int, list[str]], problems: list[str]) -> None:
    """What sets and lists share: every node's final read is the same and
    holds every acknowledged add; nothing appears that was not sent, or
    whose add certainly failed."""
    sent = {str(op.value) for op in ops if op.kind == "add"}
    failed = {str(op.value) for op in ops if op.kind == "add" and op.outcome == "fail"}
    acked = [op for op in ops if op.kind == "add" and op.outcome == "ok"]
    if not final:
        problems.append(f"{key}: no final read")
        return
    views = {node: list(v) for node, v in final.items()}
    first_node, first = sorted(views.items())[0]
    for node, view in sorted(views.items()):
        if sorted(view) != sorted(first):
            problems.append(f"{key}: final reads differ: node {first_node} and node {node}")
    final_set = set(first)
    for op in acked:
        if str(op.value) not in final_set:
            problems.append(f"{key}: acknowledged add {op.value!r} (client {op.client}) lost")
    seen = [(f"read by client {r.client}", _strings(r)) for r in _reads(ops)]
    seen += [(f"final read on node {n}", v) for n, v in sorted(views.items())]
    for who, values in seen:
        for v in values:
            if v not in sent:
                problems.append(f"{key}: {who} has {v!r}, never sent")
            elif v in failed:
                problems.append(f"{key}: {who} has {v!r}, whose add failed")


def check_sets(ops: Sequence[Op], final: dict[str, dict[int, list[str]]]) -> list[str]:
    """Problems of a set history: lost acknowledged SADDs, values never sent
    (or refused), a SADD of a new value answering 0, and reads that miss a
    value acknowledged, or already read, before they were invoked."""
    problems: list[str] = []
    for key, kops in sorted(_by_key(ops).items()):
        _common(key, kops, final.get(key, {}), problems)
        for op in kops:
            if op.kind == "add" and op.outcome == "ok" and op.result != 1:
                problems.append(f"{key}: SADD of new {op.value!r} answered {op.result!r}")
        _stale_reads(key, kops, problems)
    return problems[:MAX_PROBLEMS]


def check_lists(ops: Sequence[Op], final: dict[str, dict[int, list[str]]]) -> list[str]:
    """Problems of a list history: besides :func:`check_sets`'s, reads that
    are not prefixes of one another (or shrink in real time), duplicates,
    an acknowledged RPUSH not exactly once in the final list or not at the
    position its reply (the new length) says."""
    problems: list[str] = []
    for key, kops in sorted(_by_key(ops).items()):
        _common(key, kops, final.get(key, {}), problems)
        reads = _reads(kops)
        for read in reads:
            dup = [v for v, n in Counter(_strings(read)).items() if n > 1]
            if dup:
                problems.append(f"{key}: read by client {read.client} has {dup[0]!r} twice")
        by_len = sorted(reads, key=lambda o: len(_strings(o)))
        for a, b in zip(by_len, by_len[1:], strict=False):
            sa, sb = _strings(a), _strings(b)
            if sb[: len(sa)] != sa:
                at = next(i for i, (x, y) in enumerate(zip(sa, sb, strict=False)) if x != y)
                problems.append(
                    f"{key}: reads disagree at index {at}: client {a.client} read {sa[at]!r}, "
                    f"client {b.client} read {sb[at]!r}"
                )
                break
        _stale_reads(key, kops, problems)
        views = final.get(key, {})
        if views:
            last = sorted(views.items())[0][1]
            where = {v: i for i, v in enumerate(last)}
            times = Counter(last)
            for op in kops:
                if op.kind != "add" or op.outcome != "ok":
                    continue
                n = times[str(op.value)]
                if n > 1:
                    problems.append(f"{key}: acknowledged {op.value!r} is {n} times in the list")
                pos = where.get(str(op.value))
                if pos is not None and isinstance(op.result, int) and pos != op.result - 1:
                    problems.append(
                        f"{key}: RPUSH {op.value!r} answered length {op.result}, "
                        f"but it is at index {pos}"
                    )
    return problems[:MAX_PROBLEMS]


def check_transfers(
    ops: Sequence[Op], final: dict[int, list[int | None]], accounts: int, initial: int
) -> list[str]:
    """Problems of a transfer history: a read (in one transaction) whose
    total is not ``accounts * initial`` or with a negative or missing
    balance; a committed transfer whose new balances do not follow from
    the balances it read under WATCH; final reads that differ or are wrong."""
    problems: list[str] = []
    total = accounts * initial

    def balances(what: str, values: Sequence[int | None]) -> None:
        if len(values) != accounts or any(v is None for v in values):
            problems.append(f"{what}: missing balances {list(values)}")
            return
        ints: list[int] = [v for v in values if v is not None]
        if sum(ints) != total:
            problems.append(f"{what}: total {sum(ints)} != {total}: {ints}")
        if min(ints) < 0:
            problems.append(f"{what}: negative balance: {ints}")

    for op in ops:
        if op.outcome != "ok":
            continue
        if op.kind == "read":
            assert isinstance(op.result, list)
            read = [v if isinstance(v, int) else None for v in op.result]
            balances(f"read by client {op.client} at {op.invoke}", read)
        elif op.kind == "transfer":
            assert isinstance(op.value, list) and isinstance(op.result, list)
            a, b, x = op.value
            if op.result != [a - x, b + x]:
                problems.append(
                    f"transfer {op.key} by client {op.client}: read {a}, {b}, moved {x}, "
                    f"EXEC answered {op.result} (isolation broken)"
                )
    if not final:
        problems.append("no final read")
    for node, values in sorted(final.items()):
        balances(f"final read on node {node}", values)
    views = [v for _, v in sorted(final.items())]
    if any(v != views[0] for v in views):
        problems.append(f"final reads differ between nodes: {views}")
    return problems[:MAX_PROBLEMS]


def _pops(ops: Sequence[Op]) -> list[tuple[Op, str, str]]:
    """Acknowledged pops that took something: (op, key, value)."""
    out = []
    for op in ops:
        if op.kind == "pop" and op.outcome == "ok" and isinstance(op.result, list):
            key, value = (str(v) for v in op.result)
            out.append((op, key, value))
    return out


def check_queue(ops: Sequence[Op], final: dict[str, dict[int, list[str]]]) -> list[str]:
    """Problems of a queue history (RPUSH of unique values, BLPOP):
    a value popped twice, popped but never pushed (or from another key, or
    whose push failed), popped before its push was invoked; final lists
    that differ between nodes, hold a duplicate, a value never pushed or
    one also popped, or a value pushed (acknowledged) before the push of
    a value already popped from that key (FIFO); and more acknowledged
    pushes unaccounted for (neither popped nor in the final list) than
    pops whose outcome is unknown."""
    problems: list[str] = []
    pushes = {str(op.value): op for op in ops if op.kind == "push"}
    popped: dict[str, Op] = {}
    # Per key: the latest invoke of a push whose value was popped.
    last_popped_push: dict[str, int] = {}
    for op, key, value in _pops(ops):
        who = f"pop by client {op.client} (invoked at {op.invoke})"
        if value in popped:
            earlier = popped[value]
            problems.append(
                f"{value!r} popped twice: by client {earlier.client} (invoked at "
                f"{earlier.invoke}) and {who}"
            )
        popped.setdefault(value, op)
        push = pushes.get(value)
        if push is None:
            problems.append(f"{who} got {value!r} from {key}, never pushed")
            continue
        if push.key != key:
            problems.append(f"{who} got {value!r} from {key}, pushed to {push.key}")
        if push.outcome == "fail":
            problems.append(f"{who} got {value!r}, whose push failed")
        if op.complete is not None and op.complete < push.invoke:
            problems.append(
                f"{who} got {value!r} at {op.complete}, before its push was invoked "
                f"at {push.invoke}"
            )
        last_popped_push[push.key] = max(last_popped_push.get(push.key, -1), push.invoke)
    remaining: set[str] = set()
    for key in sorted({op.key for op in pushes.values()} | set(final)):
        views = final.get(key, {})
        if not views:
            problems.append(f"{key}: no final read")
            continue
        first_node, first = sorted(views.items())[0]
        for node, view in sorted(views.items()):
            if list(view) != list(first):
                problems.append(f"{key}: final lists differ: node {first_node} and node {node}")
        for v, n in Counter(first).items():
            if n > 1:
                problems.append(f"{key}: {v!r} is {n} times in the final list")
        for v in first:
            push = pushes.get(v)
            if push is None or push.key != key:
                problems.append(f"{key}: final list has {v!r}, never pushed to it")
            elif push.outcome == "fail":
                problems.append(f"{key}: final list has {v!r}, whose push failed")
            elif v in popped:
                problems.append(f"{key}: {v!r} is popped and still in the final list")
            elif (
                push.outcome == "ok"
                and push.complete is not None
                and push.complete < last_popped_push.get(key, -1)
            ):
                problems.append(
                    f"{key}: {v!r} is still in the final list, but a value pushed after "
                    "it was acknowledged has been popped (not FIFO)"
                )
        remaining.update(first)
    unaccounted = [
        v
        for v, op in pushes.items()
        if op.outcome == "ok" and v not in popped and v not in remaining
    ]
    unknown = sum(1 for op in ops if op.kind == "pop" and op.outcome in ("info", "pending"))
    if len(unaccounted) > unknown:
        problems.append(
            f"{len(unaccounted)} acknowledged pushes neither popped nor in the final lists "
            f"(e.g. {min(unaccounted)!r}), more than the {unknown} pops of unknown outcome"
        )
    return problems[:MAX_PROBLEMS]
