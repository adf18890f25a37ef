"""A history of concurrent key-value operations, as the linearizability checker reads it.

Operations (``op``, ``arg`` -> result of an ``ok`` completion):

* ``write`` (value) -> None
* ``read`` () -> the value, or None for a missing key
* ``delete`` () -> the number of keys removed (0 or 1), or None to not check it
* ``increment`` (delta) -> the new integer value (a missing key counts as 0)

Outcomes: ``ok`` (happened, with this result), ``fail`` (certainly did not
happen), ``info`` (unknown: it may take effect at any instant after its
invoke, or never). An operation never completed counts as ``info``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TypedDict, cast

__all__ = ["OPS", "OUTCOMES", "Arg", "Client", "History", "Operation", "OpResult"]

OPS = ("write", "read", "delete", "increment")
OUTCOMES = ("pending", "ok", "fail", "info")

Client = int | str
"""Who ran an operation (a client number, or a name)."""
Arg = str | int | None
"""A write's value, an increment's delta, or nothing."""
OpResult = str | int | None
"""What an ``ok`` operation answered: a value read, a count, a new integer."""


class OperationJSON(TypedDict):
    """One operation as kept in a history file."""

    id: int
    client: Client
    op: str
    key: str
    arg: Arg
    outcome: str
    result: OpResult
    invoke: int
    complete: int | None
    t_invoke: float
    t_complete: float | None


class HistoryJSON(TypedDict):
    """A history file."""

    format: str
    version: int
    ops: list[OperationJSON]


@dataclass
class Operation:
    """One client operation: its invocation and (maybe) its completion.

    ``invoke`` and ``complete`` are positions in the history's single event
    order (which respects real time); ``t_invoke``/``t_complete`` are seconds
    since the history started, for people reading an explanation.
    """

    id: int
    client: Client
    op: str
    key: str
    arg: Arg
    invoke: int
    t_invoke: float
    outcome: str = "pending"
    result: OpResult = None
    complete: int | None = None
    t_complete: float | None = None

    def describe(self) -> str:
        """``c3 read('k') -> '5' ok [1.200s..1.250s]``."""
        arg = "" if self.arg is None else repr(self.arg)
        text = f"#{self.id} c{self.client} {self.op}({self.key!r}{', ' + arg if arg else ''})"
        if self.outcome == "ok" and self.op != "write":
            text += f" -> {self.result!r}"
        end = "..." if self.t_complete is None else f"{self.t_complete:.3f}s"
        return f"{text} {self.outcome} [{self.t_invoke:.3f}s..{end}]"

    def to_json(self) -> OperationJSON:
        """The operation as plain JSON data."""
        return {
            "id": self.id,
            "client": self.client,
            "op": self.op,
            "key": self.key,
            "arg": self.arg,
            "outcome": self.outcome,
            "result": self.result,
            "invoke": self.invoke,
            "complete": self.complete,
            "t_invoke": self.t_invoke,
            "t_complete": self.t_complete,
        }

    @classmethod
    def from_json(cls, d: OperationJSON) -> Operation:
        """An operation read back from :meth:`to_json` data (optional fields may be missing)."""
        return cls(
            id=d["id"],
            client=d["client"],
            op=d["op"],
            key=d["key"],
            arg=d.get("arg"),
            invoke=d["invoke"],
            t_invoke=d.get("t_invoke", 0.0),
            outcome=d.get("outcome", "pending"),
            result=d.get("result"),
            complete=d.get("complete"),
            t_complete=d.get("t_complete"),
        )


def _value(v: object) -> str:
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return str(v)


class History:
    """A thread-safe record of concurrent operations, in real-time order.

    Record the invoke just before sending a request and the completion just
    after its answer arrives: the event order is then consistent with real
    time, which is all the checker relies on.
    """

    def __init__(self) -> None:
        self.ops: list[Operation] = []
        self._events = 0
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def _now(self) -> float:
        return round(time.monotonic() - self._t0, 6)

    def invoke(self, client: Client, op: str, key: str, arg: object = None) -> int:
        """Record the start of an operation; returns its id."""
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}; expected one of {OPS}")
        if op == "increment" and not isinstance(arg, int):
            raise ValueError("increment needs an integer delta")
        value: Arg
        if op == "write":
            value = _value(arg)
        elif arg is None or isinstance(arg, (str, int)):
            value = arg
        else:
            value = _value(arg)
        with self._lock:
            oid = len(self.ops)
            self.ops.append(Operation(oid, client, op, key, value, self._events, self._now()))
            self._events += 1
            return oid

    def _complete(self, oid: int, outcome: str, result: OpResult = None) -> None:
        with self._lock:
            op = self.ops[oid]
            if op.outcome != "pending":
                raise ValueError(f"operation {oid} already completed ({op.outcome})")
            op.outcome = outcome
            op.result = result
            op.complete = self._events
            op.t_complete = self._now()
            self._events += 1

    def ok(self, oid: int, result: object = None) -> None:
        """The operation happened and answered ``result``."""
        op = self.ops[oid]
        value: OpResult
        if op.op == "read":
            value = None if result is None else _value(result)
        elif op.op == "increment":
            value = int(cast(int, result))
        elif op.op == "delete":
            value = None if result is None else int(cast(int, result))
        else:
            value = None
        self._complete(oid, "ok", value)

    def fail(self, oid: int) -> None:
        """The operation certainly did not happen."""
        self._complete(oid, "fail")

    def info(self, oid: int) -> None:
        """The outcome is unknown: it may have happened, or not."""
        self._complete(oid, "info")

    def __len__(self) -> int:
        return len(self.ops)

    def counts(self) -> dict[str, int]:
        """How many operations ended in each outcome."""
        out: dict[str, int] = defaultdict(int)
        for op in self.ops:
            out[op.outcome] += 1
        return dict(out)

    def keys(self) -> list[str]:
        """Every key the history touches, sorted."""
        return sorted({op.key for op in self.ops})

    # -- persistence -----------------------------------------------------
    def to_json(self) -> HistoryJSON:
        """The history as plain JSON data."""
        with self._lock:
            return {
                "format": "eraft-kv-history",
                "version": 1,
                "ops": [op.to_json() for op in self.ops],
            }

    @classmethod
    def from_json(cls, data: HistoryJSON) -> History:
        """A history read back from :meth:`to_json` data; new events follow the loaded ones."""
        h = cls()
        h.ops = [Operation.from_json(d) for d in data["ops"]]
        h.ops.sort(key=lambda o: o.id)
        for i, op in enumerate(h.ops):
            if op.id != i:
                raise ValueError(f"operation ids must be 0..n-1, found {op.id} at {i}")
        last = [op.invoke for op in h.ops] + [op.complete or 0 for op in h.ops]
        h._events = max(last, default=-1) + 1
        return h

    def dump(self, path: str) -> None:
        """Write the history as JSON (one operation per line, diff-friendly)."""
        data = self.to_json()
        with open(path, "w") as f:
            f.write('{"format": "eraft-kv-history", "version": 1, "ops": [\n')
            f.write(",\n".join(json.dumps(op, sort_keys=True) for op in data["ops"]))
            f.write("\n]}\n")

    @classmethod
    def load(cls, path: str) -> History:
        """Read a history written by :meth:`dump`."""
        with open(path) as f:
            data: HistoryJSON = json.load(f)
        return cls.from_json(data)
