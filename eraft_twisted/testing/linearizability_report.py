"""The checker's verdict, and the explanation of a history that is not linearizable."""

from __future__ import annotations

from dataclasses import dataclass, field

from .linearizability_history import Operation
from .linearizability_model import State, reason

__all__ = ["Result", "explain"]

_INF = float("inf")


@dataclass
class Result:
    """The verdict. ``ok`` is True when every key's history is linearizable;
    otherwise ``key`` is the first offending key and ``explanation`` says why.
    ``unknown`` is True (with ``ok`` False) when the search budget ran out
    before a verdict."""

    ok: bool
    key: str | None = None
    explanation: str = ""
    unknown: bool = False
    operations: int = 0
    keys: int = 0
    elapsed: float = 0.0
    per_key: dict[str, int] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        """One line: the verdict, the size of the history, the time taken."""
        verdict = "linearizable" if self.ok else "UNKNOWN" if self.unknown else "NOT linearizable"
        text = f"{verdict}: {self.operations} operations on {self.keys} keys in {self.elapsed:.2f}s"
        if not self.ok:
            text += f"; key {self.key!r}"
        return text


def explain(key: str, todo: list[Operation], prefix: list[int], state: State, blocked: int) -> str:
    """Why ``key`` is not linearizable: the longest linearizable prefix
    (indexes into ``todo``), the value it leaves, and the operation it stuck on."""
    if blocked < 0:
        return f"key {key!r} is not linearizable ({len(todo)} operations)."
    stuck = todo[blocked]
    lines = [
        f"key {key!r} is not linearizable ({len(todo)} operations).",
        f"The longest linearizable prefix has {len(prefix)} operations and leaves the value {state!r};",
        f"then {stuck.describe()} must be linearized next (it returned first of the"
        f" pending operations) and cannot be: {reason(stuck, state)};"
        " no order of the pending operations helps.",
    ]
    done = set(prefix)
    concurrent = [
        o
        for i, o in enumerate(todo)
        if i not in done
        and i != blocked
        and o.invoke < (stuck.complete if stuck.complete is not None else _INF)
    ]
    if concurrent:
        lines.append("Not yet linearized and invoked before it completed:")
        lines += ["  " + o.describe() for o in concurrent[:12]]
        if len(concurrent) > 12:
            lines.append(f"  ... and {len(concurrent) - 12} more")
    if prefix:
        lines.append("Last operations of that prefix, in linearization order:")
        lines += ["  " + todo[i].describe() for i in prefix[-8:]]
    return "\n".join(lines)
