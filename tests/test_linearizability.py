"""The linearizability checker on known histories, and its speed."""

from __future__ import annotations

import itertools
import os
import random
import sys
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.testing.linearizability import History, Operation, check, check_key
from eraft_twisted.testing.linearizability_history import Arg, OpResult
from eraft_twisted.testing.linearizability_model import KIND, NO_STATE, State, step, unobserved
from eraft_twisted.testing.linearizability_search import Search

Step = tuple[str | int | None, ...]


def build(*steps: Step) -> History:
    """A history from steps in real-time order.

    ``("i", name, op, key[, arg])`` invokes; ``("o", name[, result])``
    completes ok; ``("f", name)`` fails; ``("x", name)`` ends in info.
    """
    h = History()
    ids: dict[str, int] = {}
    for s in steps:
        if s[0] == "i":
            ids[s[1]] = h.invoke(s[1], s[2], s[3], s[4] if len(s) > 4 else None)
        elif s[0] == "o":
            h.ok(ids[s[1]], s[2] if len(s) > 2 else None)
        elif s[0] == "f":
            h.fail(ids[s[1]])
        elif s[0] == "x":
            h.info(ids[s[1]])
        else:
            raise ValueError(s)
    return h


def seq(*ops: Step) -> list[Step]:
    """Sequential (non-overlapping) operations: ``(name, op, key, arg, result)``."""
    out: list[Step] = []
    for name, op, key, arg, result in ops:
        out += [("i", name, op, key, arg), ("o", name, result)]
    return out


class Rejects(SynchronousTestCase):
    """Histories that are not linearizable."""

    def assertRejected(self, h: History, key: str = "k") -> str:
        r = check(h)
        self.assertFalse(r.ok, "accepted a non-linearizable history")
        self.assertFalse(r.unknown)
        self.assertEqual(r.key, key)
        self.assertIn(repr(key), r.explanation)
        return r.explanation

    def test_stale_read(self) -> None:
        h = build(
            *seq(
                ("a", "write", "k", "1", None),
                ("a", "write", "k", "2", None),
                ("b", "read", "k", None, "1"),
            )
        )
        text = self.assertRejected(h)
        self.assertIn("read", text)

    def test_lost_write(self) -> None:
        h = build(*seq(("a", "write", "k", "1", None), ("b", "read", "k", None, None)))
        self.assertRejected(h)

    def test_lost_write_among_concurrent_ones(self) -> None:
        # Both writes finished before the read began; the read sees neither.
        h = build(
            ("i", "a", "write", "k", "1"),
            ("i", "b", "write", "k", "2"),
            ("o", "b"),
            ("o", "a"),
            *seq(("c", "read", "k", None, None)),
        )
        self.assertRejected(h)

    def test_read_of_a_value_never_written(self) -> None:
        h = build(
            ("i", "a", "write", "k", "1"),
            ("i", "b", "read", "k"),
            ("o", "b", "7"),
            ("o", "a"),
        )
        self.assertRejected(h)

    def test_read_of_a_failed_write(self) -> None:
        h = build(
            ("i", "a", "write", "k", "1"),
            ("f", "a"),
            *seq(("b", "read", "k", None, "1")),
        )
        self.assertRejected(h)

    def test_write_visible_then_gone(self) -> None:
        # The write is still running, but once a read saw it a later read
        # cannot miss it.
        h = build(
            ("i", "w", "write", "k", "1"),
            *seq(("a", "read", "k", None, "1"), ("b", "read", "k", None, None)),
            ("o", "w"),
        )
        self.assertRejected(h)

    def test_info_write_visible_then_gone(self) -> None:
        h = build(
            ("i", "w", "write", "k", "1"),
            ("x", "w"),
            *seq(("a", "read", "k", None, "1"), ("b", "read", "k", None, None)),
        )
        self.assertRejected(h)

    def test_increment_counted_twice(self) -> None:
        h = build(
            ("i", "a", "increment", "k", 1),
            ("x", "a"),
            *seq(("b", "increment", "k", 1, 2), ("c", "read", "k", None, "3")),
        )
        self.assertRejected(h)

    def test_increment_result_skips(self) -> None:
        h = build(*seq(("a", "increment", "k", 1, 1), ("b", "increment", "k", 1, 3)))
        self.assertRejected(h)

    def test_increment_result_repeated(self) -> None:
        # Two concurrent increments cannot both answer 1.
        h = build(
            ("i", "a", "increment", "k", 1),
            ("i", "b", "increment", "k", 1),
            ("o", "a", 1),
            ("o", "b", 1),
        )
        self.assertRejected(h)

    def test_delete_lost(self) -> None:
        h = build(
            *seq(
                ("a", "write", "k", "1", None),
                ("a", "delete", "k", None, 1),
                ("b", "read", "k", None, "1"),
            )
        )
        self.assertRejected(h)

    def test_delete_count_wrong(self) -> None:
        h = build(*seq(("a", "write", "k", "1", None), ("a", "delete", "k", None, 0)))
        self.assertRejected(h)

    def test_new_old_inversion(self) -> None:
        # A long write; reader a sees the new value, then reader b (starting
        # after a finished) sees the old one.
        h = build(
            *seq(("z", "write", "k", "0", None)),
            ("i", "w", "write", "k", "1"),
            *seq(("a", "read", "k", None, "1"), ("b", "read", "k", None, "0")),
            ("o", "w"),
        )
        self.assertRejected(h)

    def test_only_the_bad_key_is_reported(self) -> None:
        h = build(
            *seq(
                ("a", "write", "good", "1", None),
                ("b", "read", "good", None, "1"),
                ("a", "write", "bad", "1", None),
                ("b", "read", "bad", None, "2"),
            )
        )
        self.assertRejected(h, key="bad")

    def test_explanation_names_the_stuck_operation(self) -> None:
        h = build(*seq(("a", "write", "k", "1", None), ("b", "read", "k", None, "9")))
        text = check(h).explanation
        self.assertIn("read('k') -> '9'", text)
        self.assertIn("'1'", text)


class Accepts(SynchronousTestCase):
    """Tricky but legal histories."""

    def assertAccepted(self, h: History) -> None:
        r = check(h)
        self.assertTrue(r.ok, r.explanation)

    def test_empty(self) -> None:
        self.assertTrue(check(History()).ok)

    def test_sequential(self) -> None:
        self.assertAccepted(
            build(
                *seq(
                    ("a", "read", "k", None, None),
                    ("a", "write", "k", "1", None),
                    ("b", "read", "k", None, "1"),
                    ("b", "increment", "k", 4, 5),
                    ("a", "read", "k", None, "5"),
                    ("a", "delete", "k", None, 1),
                    ("a", "delete", "k", None, 0),
                    ("b", "increment", "k", -2, -2),
                    ("b", "read", "k", None, "-2"),
                )
            )
        )

    def test_concurrent_read_sees_old_or_new(self) -> None:
        for seen in (None, "1"):
            h = build(
                ("i", "w", "write", "k", "1"),
                ("i", "r", "read", "k"),
                ("o", "r", seen),
                ("o", "w"),
            )
            self.assertAccepted(h)

    def test_concurrent_writes_any_order(self) -> None:
        for last in ("1", "2"):
            h = build(
                ("i", "a", "write", "k", "1"),
                ("i", "b", "write", "k", "2"),
                ("o", "a"),
                ("o", "b"),
                *seq(("c", "read", "k", None, last)),
            )
            self.assertAccepted(h)

    def test_reads_order_the_writes(self) -> None:
        # Reader c sees 2 then 1: the writes took effect 2 then 1.
        h = build(
            ("i", "a", "write", "k", "1"),
            ("i", "b", "write", "k", "2"),
            *seq(("c", "read", "k", None, "2"), ("c", "read", "k", None, "1")),
            ("o", "a"),
            ("o", "b"),
        )
        self.assertAccepted(h)

    def test_info_write_that_happened(self) -> None:
        h = build(
            ("i", "a", "write", "k", "1"),
            ("x", "a"),
            *seq(("b", "read", "k", None, "1")),
        )
        self.assertAccepted(h)

    def test_info_write_that_did_not_happen(self) -> None:
        h = build(
            *seq(("z", "write", "k", "0", None)),
            ("i", "a", "write", "k", "1"),
            ("x", "a"),
            *seq(("b", "read", "k", None, "0"), ("b", "read", "k", None, "0")),
        )
        self.assertAccepted(h)

    def test_info_write_takes_effect_late(self) -> None:
        # The unknown write lands after a later acknowledged one.
        h = build(
            ("i", "a", "write", "k", "1"),
            ("x", "a"),
            *seq(
                ("b", "write", "k", "2", None),
                ("c", "read", "k", None, "2"),
                ("c", "read", "k", None, "1"),
            ),
        )
        self.assertAccepted(h)

    def test_pending_operation_counts_as_info(self) -> None:
        h = build(
            ("i", "a", "write", "k", "1"),
            *seq(("b", "read", "k", None, None), ("b", "read", "k", None, "1")),
        )
        self.assertAccepted(h)

    def test_info_increments(self) -> None:
        for final in ("1", "2", "3"):
            h = build(
                ("i", "a", "increment", "k", 1),
                ("x", "a"),
                ("i", "b", "increment", "k", 1),
                ("x", "b"),
                *seq(("c", "increment", "k", 1, int(final)), ("c", "read", "k", None, final)),
            )
            self.assertAccepted(h)

    def test_concurrent_increments(self) -> None:
        h = build(
            ("i", "a", "increment", "k", 1),
            ("i", "b", "increment", "k", 10),
            ("i", "c", "increment", "k", 100),
            ("o", "c", 111),
            ("o", "a", 1),
            ("o", "b", 11),
        )
        self.assertAccepted(h)

    def test_increment_of_a_non_integer_fails_cleanly(self) -> None:
        h = build(
            *seq(("a", "write", "k", "x", None)),
            ("i", "b", "increment", "k", 1),
            ("f", "b"),
            *seq(("c", "read", "k", None, "x")),
        )
        self.assertAccepted(h)

    def test_info_delete(self) -> None:
        for seen in (None, "1"):
            h = build(
                *seq(("a", "write", "k", "1", None)),
                ("i", "b", "delete", "k"),
                ("x", "b"),
                *seq(("c", "read", "k", None, seen)),
            )
            self.assertAccepted(h)

    def test_failed_read_ignored(self) -> None:
        h = build(
            ("i", "a", "read", "k"),
            ("f", "a"),
            ("i", "b", "read", "k"),
            ("x", "b"),
        )
        self.assertAccepted(h)


class Persistence(SynchronousTestCase):
    def test_dump_and_load(self) -> None:
        h = build(
            ("i", "a", "write", "k", b"\x00\xffbin"),
            ("x", "a"),
            *seq(
                ("b", "read", "k", None, b"\x00\xffbin"),
                ("b", "increment", "j", 2, 2),
                ("b", "delete", "j", None, 1),
            ),
            ("i", "c", "read", "k"),
        )
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "h.json")
            h.dump(path)
            h2 = History.load(path)
        self.assertEqual([o.to_json() for o in h.ops], [o.to_json() for o in h2.ops])
        self.assertTrue(check(h2).ok)
        # New events keep their order after the loaded ones.
        i = h2.invoke("d", "read", "k")
        self.assertGreater(h2.ops[i].invoke, max(o.complete or 0 for o in h.ops))

    def test_bad_input(self) -> None:
        h = History()
        self.assertRaises(ValueError, h.invoke, 1, "cas", "k")
        self.assertRaises(ValueError, h.invoke, 1, "increment", "k", "1")
        i = h.invoke(1, "write", "k", 1)
        h.ok(i)
        self.assertRaises(ValueError, h.info, i)


def random_history(
    seed: int,
    keys: int,
    ops_per_key: int,
    clients: int = 5,
    info: float = 0.05,
    deltas: tuple[int, ...] = (1,),
) -> History:
    """A linearizable history: per key, ``clients`` sequential clients whose
    operations take effect at a random instant inside their interval, against
    a real register; ``info`` of them end unknown (half of those happened).
    Writes have unique values, increments one of ``deltas``, as the
    fault-injection harness does."""
    rng = random.Random(seed)
    events: list[tuple[float, int, Operation]] = []
    h = History()
    serial = 0
    for k in range(keys):
        key = f"key{k}"
        planned: list[tuple[float, float, float, str, Arg, int, bool]] = []
        per_client = ops_per_key // clients
        for c in range(clients):
            t = rng.random()
            for _ in range(per_client):
                d = rng.uniform(0.05, 1.0)
                p = t + rng.random() * d
                kind = rng.choice(["read", "read", "write", "increment", "delete"])
                arg: Arg = None
                if kind == "write":
                    serial += 1
                    arg = str(serial * 1000)
                elif kind == "increment":
                    arg = rng.choice(deltas)
                happened = rng.random() >= info / 2
                planned.append((p, t, t + d, kind, arg, c, happened))
                t += d + rng.uniform(0, 0.3)
        state: str | None = None
        for _p, t1, t2, kind, arg, c, happened in sorted(planned):
            result: OpResult = None
            if happened:
                if kind == "write":
                    state = arg
                elif kind == "read":
                    result = state
                elif kind == "delete":
                    result = 0 if state is None else 1
                    state = None
                else:
                    result = int(state or 0) + arg
                    state = str(result)
            op = Operation(0, c, kind, key, arg, 0, t1)
            op.result = result
            op.outcome = "ok" if happened and rng.random() >= info / 2 else "info"
            if not happened and kind == "read":
                op.outcome = "fail"
            events.append((t1, 0, op))
            events.append((t2, 1, op))
    for i, (_, is_ret, op) in enumerate(sorted(events, key=lambda e: (e[0], e[1]))):
        if is_ret:
            op.complete = i
            op.t_complete = 0.0
        else:
            op.id = len(h.ops)
            op.invoke = i
            h.ops.append(op)
    return h


class Random(SynchronousTestCase):
    def test_random_histories_accepted(self) -> None:
        for seed in range(20):
            h = random_history(seed, keys=2, ops_per_key=100, clients=4, info=0.2)
            r = check(h)
            self.assertTrue(r.ok, f"seed {seed}: {r.explanation}")

    def test_random_histories_with_a_corrupted_read_rejected(self) -> None:
        for seed in range(20):
            h = random_history(seed, keys=1, ops_per_key=100, clients=4, info=0.1)
            # The same history is accepted before the corruption: the
            # rejection below is the corrupted read's doing.
            self.assertTrue(check(h).ok, f"seed {seed}")
            reads = [o for o in h.ops if o.op == "read" and o.outcome == "ok"]
            random.Random(seed).choice(reads).result = "never-written"
            r = check(h)
            self.assertFalse(r.ok, f"seed {seed}: a read of a value never written was accepted")
            self.assertFalse(r.unknown)
            self.assertEqual(r.key, "key0")

    def test_budget(self) -> None:
        h = random_history(1, keys=1, ops_per_key=200, clients=8, info=0.5)
        r = check_key("key0", h.ops, budget=10)
        self.assertTrue(r.unknown)
        self.assertFalse(r.ok)


class Speed(SynchronousTestCase):
    """20,000 operations over 20 keys, well under a minute."""

    def test_20000_operations(self) -> None:
        h = random_history(7, keys=20, ops_per_key=1000, clients=8, info=0.05)
        self.assertEqual(len(h), 20_000)
        t0 = time.monotonic()
        r = check(h)
        elapsed = time.monotonic() - t0
        self.assertTrue(r.ok, r.explanation)
        # A stale read near the end of one key: rejection explores more.
        bad = [o for o in h.ops if o.key == "key3" and o.op == "read" and o.outcome == "ok"]
        bad[-5].result = "999999999"
        t1 = time.monotonic()
        r2 = check(h)
        elapsed2 = time.monotonic() - t1
        self.assertFalse(r2.ok)
        self.assertEqual(r2.key, "key3")
        sys.stderr.write(
            f"\nlinearizability checker: 20,000 ops / 20 keys accepted in {elapsed:.2f}s, "
            f"with one bad read rejected in {elapsed2:.2f}s\n"
        )
        self.assertLess(elapsed, 30.0)
        self.assertLess(elapsed2, 30.0)


def brute_force(ops: list[Operation]) -> bool:
    """Linearizable? By enumerating every subset of the unknown operations
    and every order (tiny histories only)."""
    todo = [o for o in ops if o.outcome != "fail" and not (o.op == "read" and o.outcome != "ok")]
    oks = [o for o in todo if o.outcome == "ok"]
    infos = [o for o in todo if o.outcome != "ok"]
    for r in range(len(infos) + 1):
        for extra in itertools.combinations(infos, r):
            chosen = oks + list(extra)
            for order in itertools.permutations(chosen):
                pos = {o.id: k for k, o in enumerate(order)}
                if any(
                    a.complete is not None
                    and a.outcome == "ok"
                    and a.complete < b.invoke
                    and pos[a.id] > pos[b.id]
                    for a in chosen
                    for b in chosen
                ):
                    continue
                state: State = None
                for o in order:
                    new = step(KIND[o.op], o.arg, o.result, o.outcome == "ok", state)
                    if new is NO_STATE:
                        break
                    state = new
                else:
                    return True
    return False


def small_history(rng: random.Random) -> History:
    """A few overlapping operations on one key, from a real register (with
    unknown outcomes) and, half the time, one corrupted result."""
    plan = []
    for _ in range(rng.randint(2, 6)):
        t = rng.random() * 3
        d = rng.random() * 1.5
        kind = rng.choice(["write", "read", "read", "delete", "increment"])
        arg = rng.choice(["1", "2", "5"]) if kind == "write" else 1 if kind == "increment" else None
        plan.append([t + rng.random() * d, t, t + d, kind, arg, None, "ok"])
    state: State = None
    for p in sorted(plan):
        happened = rng.random() < 0.85
        kind, arg = p[3], p[4]
        if happened:
            if kind == "write":
                state = arg
            elif kind == "read":
                p[5] = state
            elif kind == "delete":
                p[5] = 0 if state is None else 1
                state = None
            elif state is None or state.lstrip("-").isdigit():
                p[5] = int(state or 0) + arg
                state = str(p[5])
            else:
                happened = False
        if not happened:
            p[6] = "fail" if rng.random() < 0.3 else "info"
        elif rng.random() < 0.2 and kind != "read":
            p[6] = "info"
        if kind == "delete" and rng.random() < 0.3:
            p[5] = None
    if rng.random() < 0.5:
        p = rng.choice(plan)
        if p[6] == "ok" and p[3] == "read":
            p[5] = rng.choice([None, "1", "2", "5", "3"])
        elif p[6] == "ok" and p[3] == "increment":
            p[5] = rng.choice([1, 2, 3, 6])
    events = sorted(
        [(p[1], 0, i) for i, p in enumerate(plan)] + [(p[2], 1, i) for i, p in enumerate(plan)]
    )
    h = History()
    ids: dict[int, int] = {}
    for _, is_ret, i in events:
        p = plan[i]
        if not is_ret:
            ids[i] = h.invoke(i, p[3], "k", p[4])
        elif p[6] == "ok":
            h.ok(ids[i], p[5])
        elif p[6] == "fail":
            h.fail(ids[i])
        else:
            h.info(ids[i])
    return h


class AgainstBruteForce(SynchronousTestCase):
    """Both searches, with every pruning, agree with plain enumeration."""

    def test_small_random_histories(self) -> None:
        rng = random.Random(2024)
        verdicts = {True: 0, False: 0}
        for n in range(400):
            h = small_history(rng)
            expected = brute_force(h.ops)
            todo = [
                o
                for o in h.ops
                if o.outcome != "fail" and not (o.op == "read" and o.outcome != "ok")
            ]
            pruned = [o for o in todo if o.id not in unobserved(todo)]
            got = (
                Search(pruned).dfs(None)[0],
                Search(pruned).bfs(None)[0],
                Search(todo).bfs(None)[0],
                check(h).ok,
            )
            self.assertEqual(
                got, (expected,) * 4, f"history {n}:\n" + "\n".join(o.describe() for o in h.ops)
            )
            verdicts[expected] += 1
        self.assertGreater(min(verdicts.values()), 50, verdicts)
