"""The register model the linearizability checker searches against.

A key is a register holding a string (or nothing); an increment reads it as
a 64-bit integer, as Redis INCR does. :func:`step` says what state an
operation leads to, or that the model cannot take it.
"""

from __future__ import annotations

import enum
from typing import Final

from .linearizability_history import Arg, Operation, OpResult

State = str | None
"""A key's value; None for a missing key."""


class _Impossible(enum.Enum):
    NO_STATE = 0


NO_STATE: Final = _Impossible.NO_STATE
"""What :func:`step` returns when the model cannot take the operation."""

KIND = {"write": 0, "read": 1, "delete": 2, "increment": 3}
"""Operation name -> the small integer the search uses."""


def as_int(state: State) -> int | None:
    """The integer Redis INCR sees in ``state`` (None: not an integer)."""
    if state is None:
        return 0
    try:
        n = int(state)
    except ValueError:
        return None
    if str(n) != state or not -(2**63) <= n < 2**63:
        return None
    return n


def step(kind: int, arg: Arg, result: OpResult, known: bool, state: State) -> State | _Impossible:
    """The next state after the operation, or ``NO_STATE`` if the model
    cannot take it in ``state`` with this result (``known``: the result was
    acknowledged and must match)."""
    if kind == 0:  # write
        return arg if not isinstance(arg, int) else str(arg)
    if kind == 1:  # read
        return state if result == state else NO_STATE
    if kind == 2:  # delete
        if known and result is not None and result != (0 if state is None else 1):
            return NO_STATE
        return None
    base = as_int(state)  # increment
    if base is None or not isinstance(arg, int):
        return NO_STATE
    new = base + arg
    if known and new != result:
        return NO_STATE
    return str(new)


def reason(op: Operation, state: State) -> str:
    """Why ``op`` cannot be linearized when the key holds ``state``."""
    if op.op == "read":
        return f"it read {op.result!r} but the value was {state!r}"
    if op.op == "increment":
        base = as_int(state)
        if base is None:
            return f"the value {state!r} is not an integer"
        return f"it answered {op.result!r} but {state!r} + {op.arg} = {base + int(op.arg or 0)}"
    if op.op == "delete":
        return f"it answered {op.result!r} but the key {'existed' if state is not None else 'was missing'}"
    return "?"


def unobserved(ops: list[Operation]) -> set[int]:
    """Ids of unknown-outcome writes and deletes that no acknowledged
    operation could have observed: leaving them out changes no verdict.

    Had such a write of ``v`` happened, the operations up to the next write
    or delete would have read ``v``, answered ``v + k`` to an increment, or
    found the key present; a delete would have been seen as a missing key, a
    delete answering 0, or a small counter. Completion before the unknown
    operation's invoke rules an observer out.
    """
    oks = [o for o in ops if o.outcome == "ok"]
    bound = sum(abs(o.arg) for o in ops if o.op == "increment" and isinstance(o.arg, int))
    read_values: dict[OpResult, int] = {}  # value read -> last completion of such a read
    numbers: list[tuple[int, int]] = []  # (integer seen, completion)
    present = -1  # last completion of a delete that answered 1
    absent = -1  # last completion of a read of None or a delete that answered 0
    for o in oks:
        end = o.complete if o.complete is not None else 0
        if o.op == "read":
            if o.result is None:
                absent = max(absent, end)
            else:
                read_values[o.result] = max(read_values.get(o.result, -1), end)
                v = as_int(o.result) if isinstance(o.result, str) else None
                if v is not None:
                    numbers.append((v, end))
        elif o.op == "increment" and isinstance(o.result, int):
            numbers.append((o.result, end))
        elif o.op == "delete" and o.result is not None:
            if o.result:
                present = max(present, end)
            else:
                absent = max(absent, end)
    out: set[int] = set()
    for o in ops:
        if o.outcome == "ok":
            continue
        if o.op == "write":
            seen = read_values.get(o.arg, -1) > o.invoke or present > o.invoke
            v = as_int(o.arg) if isinstance(o.arg, str) else None
            if not seen and v is not None:
                seen = any(abs(r - v) <= bound and end > o.invoke for r, end in numbers)
        elif o.op == "delete":
            seen = absent > o.invoke or any(
                abs(r) <= bound and end > o.invoke for r, end in numbers
            )
        else:
            continue
        if not seen:
            out.add(o.id)
    return out
