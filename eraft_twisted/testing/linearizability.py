"""A linearizability checker for key-value histories.

The search is Wing & Gong's, with Lowe's memoisation, in the shape Porcupine
uses: the history of one key becomes a time-ordered doubly linked list of
call and return entries; the search linearizes a call whose operation the
model accepts from the current state, lifts it (and its return) out of the
list, and backtracks when it meets a return whose call was not linearized.
A cache of (set of linearized operations, state) pairs stops it from
exploring the same configuration twice. Keys are independent registers, so
the history is partitioned by key and each part is checked on its own.

Unknown outcomes are what make such searches blow up, so the search also
prunes configurations dominated by one with fewer unknown operations used,
treats interchangeable unknown operations as one class, linearizes a read as
soon as it can, and leaves out unknown writes and deletes nobody could have
observed (see :class:`_Search`). When the depth-first search has not settled
a key within a few hundred steps per operation, a breadth-first search over
the same configurations, which never expands a dominated one, takes over:
it exhausts a non-linearizable history much faster.

Operations (``op``, ``arg`` -> result of an ``ok`` completion):

* ``write`` (value) -> None
* ``read`` () -> the value, or None for a missing key
* ``delete`` () -> the number of keys removed (0 or 1), or None to not check it
* ``increment`` (delta) -> the new integer value (a missing key counts as 0)

Outcomes: ``ok`` (happened, with this result), ``fail`` (certainly did not
happen), ``info`` (unknown: it may take effect at any instant after its
invoke, or never). An operation never completed counts as ``info``. An
``info`` operation is given a return at infinity, so linearizing it after
everything else stands for "never happened"; the search therefore succeeds
as soon as every ``ok`` operation is linearized.

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

import json
import sys
import threading
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "OPS",
    "History",
    "Operation",
    "Result",
    "check",
    "check_key",
]

OPS = ("write", "read", "delete", "increment")
OUTCOMES = ("pending", "ok", "fail", "info")
_INF = float("inf")
_NO_STATE = object()


@dataclass
class Operation:
    """One client operation: its invocation and (maybe) its completion.

    ``invoke`` and ``complete`` are positions in the history's single event
    order (which respects real time); ``t_invoke``/``t_complete`` are seconds
    since the history started, for people reading an explanation.
    """

    id: int
    client: Any
    op: str
    key: str
    arg: Any
    invoke: int
    t_invoke: float
    outcome: str = "pending"
    result: Any = None
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

    def to_json(self) -> dict[str, Any]:
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
    def from_json(cls, d: dict[str, Any]) -> Operation:
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

    def invoke(self, client: Any, op: str, key: str, arg: Any = None) -> int:
        """Record the start of an operation; returns its id."""
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}; expected one of {OPS}")
        if op == "increment" and not isinstance(arg, int):
            raise ValueError("increment needs an integer delta")
        if op == "write":
            arg = _value(arg)
        with self._lock:
            oid = len(self.ops)
            self.ops.append(Operation(oid, client, op, key, arg, self._events, self._now()))
            self._events += 1
            return oid

    def _complete(self, oid: int, outcome: str, result: Any = None) -> None:
        with self._lock:
            op = self.ops[oid]
            if op.outcome != "pending":
                raise ValueError(f"operation {oid} already completed ({op.outcome})")
            op.outcome = outcome
            op.result = result
            op.complete = self._events
            op.t_complete = self._now()
            self._events += 1

    def ok(self, oid: int, result: Any = None) -> None:
        """The operation happened and answered ``result``."""
        op = self.ops[oid]
        if op.op == "read":
            result = None if result is None else _value(result)
        elif op.op == "increment":
            result = int(result)
        elif op.op == "delete":
            result = None if result is None else int(result)
        else:
            result = None
        self._complete(oid, "ok", result)

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
        return sorted({op.key for op in self.ops})

    # -- persistence -----------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "format": "eraft-kv-history",
                "version": 1,
                "ops": [op.to_json() for op in self.ops],
            }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
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
        with open(path) as f:
            return cls.from_json(json.load(f))


def _value(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("latin-1")
    return str(v)


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
        verdict = "linearizable" if self.ok else "UNKNOWN" if self.unknown else "NOT linearizable"
        text = f"{verdict}: {self.operations} operations on {self.keys} keys in {self.elapsed:.2f}s"
        if not self.ok:
            text += f"; key {self.key!r}"
        return text


# -- the model -----------------------------------------------------------
def _as_int(state: str | None) -> int | None:
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


def _step(kind: int, arg: Any, result: Any, known: bool, state: Any) -> Any:
    """The next state after the operation, or ``_NO_STATE`` if the model
    cannot take it in ``state`` with this result."""
    if kind == 0:  # write
        return arg
    if kind == 1:  # read
        return state if result == state else _NO_STATE
    if kind == 2:  # delete
        if known and result is not None and result != (0 if state is None else 1):
            return _NO_STATE
        return None
    base = _as_int(state)  # increment
    if base is None:
        return _NO_STATE
    new = base + arg
    if known and new != result:
        return _NO_STATE
    return str(new)


_KIND = {"write": 0, "read": 1, "delete": 2, "increment": 3}


def _reason(op: Operation, state: Any) -> str:
    if op.op == "read":
        return f"it read {op.result!r} but the value was {state!r}"
    if op.op == "increment":
        base = _as_int(state)
        if base is None:
            return f"the value {state!r} is not an integer"
        return f"it answered {op.result!r} but {state!r} + {op.arg} = {base + op.arg}"
    if op.op == "delete":
        return f"it answered {op.result!r} but the key {'existed' if state is not None else 'was missing'}"
    return "?"


def _unobserved(ops: list[Operation]) -> set[int]:
    """Ids of unknown-outcome writes and deletes that no acknowledged
    operation could have observed: leaving them out changes no verdict.

    Had such a write of ``v`` happened, the operations up to the next write
    or delete would have read ``v``, answered ``v + k`` to an increment, or
    found the key present; a delete would have been seen as a missing key, a
    delete answering 0, or a small counter. Completion before the unknown
    operation's invoke rules an observer out.
    """
    oks = [o for o in ops if o.outcome == "ok"]
    bound = sum(abs(o.arg) for o in ops if o.op == "increment")
    read_values: dict[Any, int] = {}  # value read -> last completion of such a read
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
                v = _as_int(o.result)
                if v is not None:
                    numbers.append((v, end))
        elif o.op == "increment":
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
            v = _as_int(o.arg)
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


class _Search:
    """The history of one key, prepared for the two searches below.

    Both use the same reductions, each sound because a linearization that
    does not use them can be rewritten into one that does:

    * an ``info`` operation may always be left out, so a configuration with
      the same acknowledged operations and state as another, but a superset
      of its ``info`` operations, is dominated and pruned;
    * an ``info`` operation that leaves the state as it is, or whose effect is
      overwritten by the very next operation, is never linearized;
    * ``info`` operations with the same effect (two unknown ``INCR k``, any
      two unknown deletes, two unknown writes of values nobody saw) are
      interchangeable once invoked, so they are linearized in invoke order
      only;
    * a read (or a delete that answered 0) that can be linearized now, is:
      it changes nothing, so no alternative to it is tried;
    * an ``info`` operation is linearized only if its effect (possibly through
      unknown increments after it) can be what the next acknowledged
      operation observes.
    """

    def __init__(self, todo: list[Operation]) -> None:
        self.todo = todo
        n = self.n = len(todo)
        self.kinds = [_KIND[o.op] for o in todo]
        self.args = [o.arg for o in todo]
        self.results = [o.result for o in todo]
        self.known = known = [o.outcome == "ok" for o in todo]
        self.bit = [1 << i for i in range(n)]
        self.total_ok = sum(known)
        # Symmetry classes of info operations: the previous member in invoke order.
        self.before = [-1] * n
        last_of: dict[tuple[int, Any], int] = {}
        # An unknown write whose value nobody read (nor an increment answered
        # from it) can only be seen as "the key exists": any two such are alike.
        read = {o.result for o in todo if o.outcome == "ok" and o.op == "read"}
        numbers = [_as_int(v) for v in read if v is not None]
        numbers += [o.result for o in todo if o.outcome == "ok" and o.op == "increment"]
        bound = sum(abs(o.arg) for o in todo if o.op == "increment")

        def seen(v: str) -> bool:
            iv = _as_int(v)
            return v in read or (
                iv is not None and any(r is not None and abs(r - iv) <= bound for r in numbers)
            )

        for i in sorted(range(n), key=lambda j: todo[j].invoke):
            if not known[i]:
                cls = (self.kinds[i], self.args[i])
                if cls[0] == 0 and not seen(cls[1]):
                    cls = (0, _NO_STATE)
                self.before[i] = last_of.get(cls, -1)
                last_of[cls] = i
        kinds, results = self.kinds, self.results
        # Operations whose outcome does not depend on the state they find: a
        # write, and a delete whose answer is not checked.
        self.overwrites = [
            kinds[i] == 0 or (kinds[i] == 2 and (not known[i] or results[i] is None))
            for i in range(n)
        ]
        # Acknowledged operations that leave the state as they find it.
        self.effect_free = [
            known[i] and (kinds[i] == 1 or (kinds[i] == 2 and results[i] == 0)) for i in range(n)
        ]
        self.steps = 0

    def _useful(self, oks: list[int], infos: list[int]) -> Callable[[int], bool]:
        """Which unknown operations are worth linearizing before one of the
        acknowledged operations ``oks`` (the next one must observe what they
        did: an overwrite right after one is never tried)."""
        kinds, results, args = self.kinds, self.results, self.args
        wanted: set[Any] = set()  # states some operation in oks can start from
        exists = False  # some delete answered 1: any present value will do
        for i in oks:
            k = kinds[i]
            if k == 1:
                wanted.add(results[i])
            elif k == 3:
                base = results[i] - args[i]
                wanted.add(str(base))
                if base == 0:
                    wanted.add(None)
            elif k == 2 and results[i] is not None:
                if results[i]:
                    exists = True
                else:
                    wanted.add(None)
        numbers = any(w is not None and _as_int(w) is not None for w in wanted)
        # Unknown increments can bridge from any integer to a wanted one.
        bridge = numbers and any(kinds[j] == 3 for j in infos)

        def useful(j: int) -> bool:
            k = kinds[j]
            if k == 0:
                v = args[j]
                return v in wanted or exists or (bridge and _as_int(v) is not None)
            if k == 2:
                return None in wanted or bridge
            return numbers or exists

        return useful

    def _free(self, i: int, state: Any) -> bool:
        return self.effect_free[i] and (
            _step(self.kinds[i], self.args[i], self.results[i], True, state) == state
        )

    # -- depth first, as Porcupine ---------------------------------------
    def dfs(self, budget: int | None) -> tuple[bool | None, list[int], Any, int]:
        """(verdict or None when out of budget, longest prefix, its state, the
        operation it stuck on)."""
        todo, n = self.todo, self.n
        kinds, args, results, known = self.kinds, self.args, self.results, self.known
        bit, before, overwrites = self.bit, self.before, self.overwrites
        # Events: (time, is_return, op index); info operations return at infinity.
        events: list[tuple[float, int, int]] = []
        for i, o in enumerate(todo):
            events.append((o.invoke, 0, i))
            events.append((o.complete if o.outcome == "ok" else _INF, 1, i))  # type: ignore[arg-type]
        events.sort()
        head = 2 * n
        nxt = [-1] * (2 * n + 1)
        prv = [-1] * (2 * n + 1)
        op_of = [0] * (2 * n)
        is_call = [False] * (2 * n + 1)
        match = [0] * (2 * n)
        call_pos = [0] * n
        ret_pos = [0] * n
        for pos, (_, is_ret, i) in enumerate(events):
            op_of[pos] = i
            is_call[pos] = not is_ret
            if is_ret:
                ret_pos[i] = pos
            else:
                call_pos[i] = pos
        for i in range(n):
            match[call_pos[i]] = ret_pos[i]
        order = [head, *range(2 * n)]
        for a, b in zip(order, order[1:], strict=False):
            nxt[a] = b
            prv[b] = a

        def candidates(info_bits: int, state: Any) -> list[int]:
            """Call entries before the first return: acknowledged ones first;
            or only a read that sees ``state``."""
            oks: list[int] = []
            infos: list[int] = []
            e = nxt[head]
            while e >= 0 and is_call[e]:
                i = op_of[e]
                if known[i]:
                    if self._free(i, state):
                        return [e]
                    oks.append(e)
                elif before[i] < 0 or info_bits & bit[before[i]]:
                    infos.append(e)
                e = nxt[e]
            if infos:
                useful = self._useful([op_of[e] for e in oks], [op_of[e] for e in infos])
                oks.extend(e for e in infos if useful(op_of[e]))
            return oks

        def lift(e: int) -> None:
            for x in (e, match[e]):
                nxt[prv[x]] = nxt[x]
                if nxt[x] >= 0:
                    prv[nxt[x]] = prv[x]

        def unlift(e: int) -> None:
            for x in (match[e], e):
                nxt[prv[x]] = x
                if nxt[x] >= 0:
                    prv[nxt[x]] = x

        remaining = self.total_ok
        state: Any = None
        ok_bits = 0
        info_bits = 0
        # (acknowledged set, state) -> the info sets explored with them
        cache: dict[tuple[int, Any], list[int]] = {}
        # Frames: [candidates, next index, entry linearized to get here, state
        # before it, was that operation of unknown outcome]
        stack: list[list[Any]] = [[candidates(0, None), 0, -1, None, False]]
        steps = 0
        best = -1
        best_state: Any = None
        best_prefix: list[int] = []
        best_blocked = -1
        if remaining == 0:
            return True, [], None, -1
        while True:
            frame = stack[-1]
            cands: list[int] = frame[0]
            idx: int = frame[1]
            after_info: bool = frame[4]
            pushed = False
            while idx < len(cands):
                steps += 1
                e = cands[idx]
                idx += 1
                i = op_of[e]
                new = _step(kinds[i], args[i], results[i], known[i], state)
                if new is _NO_STATE:
                    continue
                if not known[i] and new == state:
                    continue  # an unknown operation that changes nothing
                if after_info and overwrites[i]:
                    continue  # tried without the previous unknown operation
                if known[i]:
                    nok, ninfo = ok_bits | bit[i], info_bits
                else:
                    nok, ninfo = ok_bits, info_bits | bit[i]
                seen = cache.setdefault((nok, new), [])
                if any(s & ~ninfo == 0 for s in seen):
                    continue
                seen.append(ninfo)
                frame[1] = idx
                lift(e)
                ok_bits, info_bits = nok, ninfo
                stack.append([None, 0, e, state, not known[i]])
                state = new
                if known[i]:
                    remaining -= 1
                    if remaining == 0:
                        self.steps += steps
                        return True, [], None, -1
                stack[-1][0] = candidates(info_bits, state)
                pushed = True
                break
            if budget is not None and steps > budget:
                self.steps += steps
                return None, best_prefix, best_state, best_blocked
            if pushed:
                continue
            # Every candidate failed: remember how far we got, then backtrack.
            depth = self.total_ok - remaining
            if depth > best:
                best = depth
                best_state = state
                best_prefix = [op_of[f[2]] for f in stack[1:]]
                e = nxt[head]
                while e >= 0 and is_call[e]:
                    e = nxt[e]
                best_blocked = op_of[e] if e >= 0 else -1
            if len(stack) == 1:
                self.steps += steps
                return False, best_prefix, best_state, best_blocked
            _, _, e, prev_state, _ = stack.pop()
            i = op_of[e]
            unlift(e)
            if known[i]:
                ok_bits &= ~bit[i]
                remaining += 1
            else:
                info_bits &= ~bit[i]
            state = prev_state

    # -- breadth first, one level per acknowledged operation ---------------
    def bfs(self, budget: int | None) -> tuple[bool | None, list[int], Any, int]:
        """The same verdict, level by level: every configuration with k
        acknowledged operations linearized is known before any with k+1, so a
        dominated configuration is never expanded (depth first can meet the
        dominating one only later)."""
        todo = self.todo
        kinds, args, results, known = self.kinds, self.args, self.results, self.known
        bit, before, overwrites = self.bit, self.before, self.overwrites
        oks = [i for i in range(self.n) if known[i]]
        infos = sorted((i for i in range(self.n) if not known[i]), key=lambda i: todo[i].invoke)
        info_inv = [todo[i].invoke for i in infos]
        by_ret = sorted(oks, key=lambda i: todo[i].complete or 0)
        by_inv = sorted(oks, key=lambda i: todo[i].invoke)
        ok_inv = [todo[i].invoke for i in by_inv]
        # For a frontier f (the first unlinearized operation in return
        # order), how many operations of each kind were invoked before it returned.
        ok_upto = [bisect_left(ok_inv, todo[i].complete or 0) for i in by_ret]
        info_upto = [bisect_left(info_inv, todo[i].complete or 0) for i in by_ret]
        total = self.total_ok
        steps = 0

        # A configuration: (ok bits, info bits, state, frontier, low, after_info, parent, op)
        Config = tuple[int, int, Any, int, int, bool, Any, int]
        level: list[Config] = [(0, 0, None, 0, 0, False, None, -1)]
        if total == 0:
            return True, [], None, -1
        for _depth in range(total):
            # 1. Close the level under unknown operations.
            groups: dict[tuple[int, Any], list[Config]] = {}
            for c in level:
                groups.setdefault((c[0], c[2]), []).append(c)
            queue = list(level)
            closed: list[Config] = []
            while queue:
                c = queue.pop()
                okb, infb, state, f, lo, after_info, _, _ = c
                if not _alive(groups, c):
                    continue
                closed.append(c)
                greedy = -1
                for j in by_inv[lo : ok_upto[f]]:
                    if not okb & bit[j] and self._free(j, state):
                        greedy = j
                        break
                if greedy >= 0:
                    continue
                avail = [
                    j
                    for j in infos[: info_upto[f]]
                    if not infb & bit[j] and (before[j] < 0 or infb & bit[before[j]])
                ]
                if not avail:
                    continue
                window = [j for j in by_inv[lo : ok_upto[f]] if not okb & bit[j]]
                useful = self._useful(window, avail)
                for j in avail:
                    steps += 1
                    if not useful(j):
                        continue
                    new = _step(kinds[j], args[j], None, False, state)
                    if new is _NO_STATE or new == state or (after_info and overwrites[j]):
                        continue
                    nc = (okb, infb | bit[j], new, f, lo, True, c, j)
                    if _add(groups, nc):
                        queue.append(nc)
            # 2. Step every configuration by one acknowledged operation.
            nxt_groups: dict[tuple[int, Any], list[Config]] = {}
            for c in closed:
                okb, infb, state, f, lo, after_info, _, _ = c
                if not _alive(groups, c):
                    continue
                window = [j for j in by_inv[lo : ok_upto[f]] if not okb & bit[j]]
                free = [j for j in window if self._free(j, state)]
                for j in free[:1] or window:
                    steps += 1
                    new = _step(kinds[j], args[j], results[j], True, state)
                    if new is _NO_STATE or (after_info and overwrites[j]):
                        continue
                    nokb = okb | bit[j]
                    nf = f
                    while nf < total and nokb & bit[by_ret[nf]]:
                        nf += 1
                    if nf == total:
                        self.steps += steps
                        return True, [], None, -1
                    nlo = lo
                    while nlo < total and nokb & bit[by_inv[nlo]]:
                        nlo += 1
                    _add(nxt_groups, (nokb, infb, new, nf, nlo, False, c, j))
            if budget is not None and steps > budget:
                self.steps += steps
                return None, *self._path(level[0]), -1
            nxt_level = [c for cs in nxt_groups.values() for c in cs]
            if not nxt_level:
                best = min(closed, key=lambda c: bin(c[1]).count("1"))
                prefix, state = self._path(best)
                self.steps += steps
                return False, prefix, state, by_ret[best[3]]
            level = nxt_level
        raise AssertionError("unreachable")

    @staticmethod
    def _path(c: Any) -> tuple[list[int], Any]:
        state = c[2]
        ops: list[int] = []
        while c is not None and c[7] >= 0:
            ops.append(c[7])
            c = c[6]
        return ops[::-1], state


def _add(groups: dict[tuple[int, Any], list[Any]], c: Any) -> bool:
    """Add configuration ``c`` unless one with a subset of its unknown
    operations is there; drop those it dominates. True if added."""
    same = groups.setdefault((c[0], c[2]), [])
    infb = c[1]
    for d in same:
        if d[1] & ~infb == 0:
            return False
    same[:] = [d for d in same if infb & ~d[1] != 0]
    same.append(c)
    return True


def _alive(groups: dict[tuple[int, Any], list[Any]], c: Any) -> bool:
    return any(d is c for d in groups.get((c[0], c[2]), ()))


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
    useless = _unobserved(todo)
    todo = [o for o in todo if o.id not in useless]
    search = _Search(todo)
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
        _explain(key, todo, prefix, state, blocked),
        operations=n,
        keys=1,
        elapsed=elapsed,
    )


def _explain(key: str, todo: list[Operation], prefix: list[int], state: Any, blocked: int) -> str:
    if blocked < 0:
        return f"key {key!r} is not linearizable ({len(todo)} operations)."
    stuck = todo[blocked]
    lines = [
        f"key {key!r} is not linearizable ({len(todo)} operations).",
        f"The longest linearizable prefix has {len(prefix)} operations and leaves the value {state!r};",
        f"then {stuck.describe()} must be linearized next (it returned first of the"
        f" pending operations) and cannot be: {_reason(stuck, state)};"
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
