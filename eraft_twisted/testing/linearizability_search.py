"""The search for a linearization of one key's history.

The search is Wing & Gong's, with Lowe's memoisation, in the shape Porcupine
uses: the history of one key becomes a time-ordered doubly linked list of
call and return entries; the search linearizes a call whose operation the
model accepts from the current state, lifts it (and its return) out of the
list, and backtracks when it meets a return whose call was not linearized.
A cache of (set of linearized operations, state) pairs stops it from
exploring the same configuration twice.

When the depth-first search has not settled a key within a few hundred
steps per operation, a breadth-first search over the same configurations,
which never expands a dominated one, takes over: it exhausts a
non-linearizable history much faster.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from .linearizability_history import Arg, Operation, OpResult
from .linearizability_model import KIND, NO_STATE, State, as_int, step

__all__ = ["Search", "Verdict"]

_INF = float("inf")

Verdict = tuple[bool | None, list[int], State, int]
"""(linearizable? -- None when out of budget --, the longest linearizable
prefix found, the state it leaves, the operation it stuck on or -1)."""

_Conf = tuple[int, int, State, int, int, bool, "_Conf | None", int]
"""A breadth-first configuration: (acknowledged bits, unknown bits, state,
frontier, low, reached through an unknown operation?, parent, operation)."""
_Groups = dict[tuple[int, State], list[_Conf]]
"""Configurations by (acknowledged bits, state): only undominated ones are kept."""


class _Frame:
    """A depth-first frame: the candidates at this depth, the next one to
    try, the entry linearized to get here, the state before it, and whether
    that operation's outcome is unknown."""

    __slots__ = ("cands", "next", "entry", "prev_state", "after_info")

    def __init__(self, cands: list[int], entry: int, prev_state: State, after_info: bool) -> None:
        self.cands = cands
        self.next = 0
        self.entry = entry
        self.prev_state = prev_state
        self.after_info = after_info


class Search:
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
        self.kinds = [KIND[o.op] for o in todo]
        self.args = [o.arg for o in todo]
        self.results = [o.result for o in todo]
        self.known = known = [o.outcome == "ok" for o in todo]
        self.bit = [1 << i for i in range(n)]
        self.total_ok = sum(known)
        # Symmetry classes of info operations: the previous member in invoke order.
        self.before = [-1] * n
        last_of: dict[tuple[int, object], int] = {}
        # An unknown write whose value nobody read (nor an increment answered
        # from it) can only be seen as "the key exists": any two such are alike.
        read = {o.result for o in todo if o.outcome == "ok" and o.op == "read"}
        numbers = [as_int(v) for v in read if isinstance(v, str)]
        numbers += [
            o.result
            for o in todo
            if o.outcome == "ok" and o.op == "increment" and isinstance(o.result, int)
        ]
        bound = sum(abs(o.arg) for o in todo if o.op == "increment" and isinstance(o.arg, int))

        def seen(v: Arg) -> bool:
            iv = as_int(v) if isinstance(v, str) else None
            return v in read or (
                iv is not None and any(r is not None and abs(r - iv) <= bound for r in numbers)
            )

        for i in sorted(range(n), key=lambda j: todo[j].invoke):
            if not known[i]:
                cls: tuple[int, object] = (self.kinds[i], self.args[i])
                if cls[0] == 0 and not seen(self.args[i]):
                    cls = (0, NO_STATE)
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
        wanted: set[OpResult] = set()  # states some operation in oks can start from
        exists = False  # some delete answered 1: any present value will do
        for i in oks:
            k = kinds[i]
            if k == 1:
                wanted.add(results[i])
            elif k == 3:
                result, delta = results[i], args[i]
                assert isinstance(result, int) and isinstance(delta, int)
                base = result - delta
                wanted.add(str(base))
                if base == 0:
                    wanted.add(None)
            elif k == 2 and results[i] is not None:
                if results[i]:
                    exists = True
                else:
                    wanted.add(None)
        numbers = any(isinstance(w, str) and as_int(w) is not None for w in wanted)
        # Unknown increments can bridge from any integer to a wanted one.
        bridge = numbers and any(kinds[j] == 3 for j in infos)

        def useful(j: int) -> bool:
            k = kinds[j]
            if k == 0:
                v = args[j]
                return (
                    v in wanted
                    or exists
                    or (bridge and isinstance(v, str) and as_int(v) is not None)
                )
            if k == 2:
                return None in wanted or bridge
            return numbers or exists

        return useful

    def _free(self, i: int, state: State) -> bool:
        return self.effect_free[i] and (
            step(self.kinds[i], self.args[i], self.results[i], True, state) == state
        )

    # -- depth first, as Porcupine ---------------------------------------
    def dfs(self, budget: int | None) -> Verdict:
        """(verdict or None when out of budget, longest prefix, its state, the
        operation it stuck on)."""
        todo, n = self.todo, self.n
        kinds, args, results, known = self.kinds, self.args, self.results, self.known
        bit, before, overwrites = self.bit, self.before, self.overwrites
        # Events: (time, is_return, op index); info operations return at infinity.
        events: list[tuple[float, int, int]] = []
        for i, o in enumerate(todo):
            events.append((o.invoke, 0, i))
            ret = _INF if o.outcome != "ok" or o.complete is None else o.complete
            events.append((ret, 1, i))
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

        def candidates(info_bits: int, state: State) -> list[int]:
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
        state: State = None
        ok_bits = 0
        info_bits = 0
        # (acknowledged set, state) -> the info sets explored with them
        cache: dict[tuple[int, State], list[int]] = {}
        stack = [_Frame(candidates(0, None), -1, None, False)]
        steps = 0
        best = -1
        best_state: State = None
        best_prefix: list[int] = []
        best_blocked = -1
        if remaining == 0:
            return True, [], None, -1
        while True:
            frame = stack[-1]
            cands = frame.cands
            idx = frame.next
            after_info = frame.after_info
            pushed = False
            while idx < len(cands):
                steps += 1
                e = cands[idx]
                idx += 1
                i = op_of[e]
                new = step(kinds[i], args[i], results[i], known[i], state)
                if new is NO_STATE:
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
                frame.next = idx
                lift(e)
                ok_bits, info_bits = nok, ninfo
                pushed_frame = _Frame([], e, state, not known[i])
                stack.append(pushed_frame)
                state = new
                if known[i]:
                    remaining -= 1
                    if remaining == 0:
                        self.steps += steps
                        return True, [], None, -1
                pushed_frame.cands = candidates(info_bits, state)
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
                best_prefix = [op_of[f.entry] for f in stack[1:]]
                e = nxt[head]
                while e >= 0 and is_call[e]:
                    e = nxt[e]
                best_blocked = op_of[e] if e >= 0 else -1
            if len(stack) == 1:
                self.steps += steps
                return False, best_prefix, best_state, best_blocked
            popped = stack.pop()
            e = popped.entry
            i = op_of[e]
            unlift(e)
            if known[i]:
                ok_bits &= ~bit[i]
                remaining += 1
            else:
                info_bits &= ~bit[i]
            state = popped.prev_state

    # -- breadth first, one level per acknowledged operation ---------------
    def bfs(self, budget: int | None) -> Verdict:
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

        level: list[_Conf] = [(0, 0, None, 0, 0, False, None, -1)]
        if total == 0:
            return True, [], None, -1
        for _depth in range(total):
            # 1. Close the level under unknown operations.
            groups: _Groups = {}
            for c in level:
                groups.setdefault((c[0], c[2]), []).append(c)
            queue = list(level)
            closed: list[_Conf] = []
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
                    new = step(kinds[j], args[j], None, False, state)
                    if new is NO_STATE or new == state or (after_info and overwrites[j]):
                        continue
                    nc: _Conf = (okb, infb | bit[j], new, f, lo, True, c, j)
                    if _add(groups, nc):
                        queue.append(nc)
            # 2. Step every configuration by one acknowledged operation.
            nxt_groups: _Groups = {}
            for c in closed:
                okb, infb, state, f, lo, after_info, _, _ = c
                if not _alive(groups, c):
                    continue
                window = [j for j in by_inv[lo : ok_upto[f]] if not okb & bit[j]]
                free = [j for j in window if self._free(j, state)]
                for j in free[:1] or window:
                    steps += 1
                    new = step(kinds[j], args[j], results[j], True, state)
                    if new is NO_STATE or (after_info and overwrites[j]):
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
    def _path(c: _Conf) -> tuple[list[int], State]:
        state = c[2]
        ops: list[int] = []
        at: _Conf | None = c
        while at is not None and at[7] >= 0:
            ops.append(at[7])
            at = at[6]
        return ops[::-1], state


def _add(groups: _Groups, c: _Conf) -> bool:
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


def _alive(groups: _Groups, c: _Conf) -> bool:
    return any(d is c for d in groups.get((c[0], c[2]), ()))
