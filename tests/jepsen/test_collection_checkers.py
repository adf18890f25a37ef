"""The collection campaigns' checkers pass good histories and catch bad ones:
a lost acknowledged write, a phantom, a duplicate, a non-prefix read, a
stale read, a wrong total, broken isolation, a value popped twice."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.testing.collection_checkers import (
    Recorder,
    check_lists,
    check_queue,
    check_sets,
    check_transfers,
)


class _History:
    """Build a history in order: each call invokes and completes at once
    unless ``open_`` keeps it pending (completed later by :meth:`end`)."""

    def __init__(self) -> None:
        self.rec = Recorder()

    def add(self, value: str, result: int | None = 1, outcome: str = "ok", key: str = "k") -> None:
        op = self.rec.invoke(0, "add", key, value)
        self.rec.done(op, outcome, result if outcome == "ok" else None)

    def read(self, values: list[str], key: str = "k", client: int = 1) -> None:
        op = self.rec.invoke(client, "read", key)
        self.rec.done(op, "ok", values)


def _final(*values: str, nodes: int = 3) -> dict[str, dict[int, list[str]]]:
    return {"k": {n: list(values) for n in range(nodes)}}


class SetChecker(unittest.TestCase):
    def test_good(self) -> None:
        h = _History()
        h.add("a")
        h.read(["a"])
        h.add("b", outcome="info")  # unknown: may be there or not
        h.add("c")
        h.read(["c", "a"])
        self.assertEqual(check_sets(h.rec.ops, _final("a", "c")), [])
        self.assertEqual(check_sets(h.rec.ops, _final("a", "b", "c")), [])

    def test_lost_ack(self) -> None:
        h = _History()
        h.add("a")
        h.add("b")
        problems = check_sets(h.rec.ops, _final("a"))
        self.assertEqual(len(problems), 1)
        self.assertIn("'b' (client 0) lost", problems[0])

    def test_phantom(self) -> None:
        h = _History()
        h.add("a")
        h.read(["a", "zz"])
        self.assertIn("never sent", " ".join(check_sets(h.rec.ops, _final("a"))))

    def test_failed_add_appears(self) -> None:
        h = _History()
        h.add("a", outcome="fail")
        h.read(["a"])
        self.assertIn("whose add failed", " ".join(check_sets(h.rec.ops, _final("a"))))

    def test_stale_read(self) -> None:
        h = _History()
        h.add("a")
        h.read([])
        self.assertIn("misses 1 values", " ".join(check_sets(h.rec.ops, _final("a"))))

    def test_read_going_back(self) -> None:
        h = _History()
        h.add("a", outcome="info")
        h.read(["a"])
        h.read([])
        self.assertIn("misses", " ".join(check_sets(h.rec.ops, _final("a"))))

    def test_nodes_differ(self) -> None:
        h = _History()
        h.add("a")
        final = {"k": {0: ["a"], 1: ["a", "b"]}}
        h.add("b", outcome="info")
        self.assertIn("final reads differ", " ".join(check_sets(h.rec.ops, final)))

    def test_duplicate_apply_answer(self) -> None:
        h = _History()
        h.add("a", result=0)
        self.assertIn("answered 0", " ".join(check_sets(h.rec.ops, _final("a"))))

    def test_concurrent_add_not_required(self) -> None:
        rec = Recorder()
        add = rec.invoke(0, "add", "k", "a")
        read = rec.invoke(1, "read", "k")
        rec.done(add, "ok", 1)
        rec.done(read, "ok", [])
        self.assertEqual(check_sets(rec.ops, _final("a")), [])


class ListChecker(unittest.TestCase):
    def test_good(self) -> None:
        h = _History()
        h.add("a", result=1)
        h.read(["a"])
        h.add("b", result=2)
        h.add("c", outcome="info")
        h.add("d", result=4)
        h.read(["a", "b", "c", "d"])
        self.assertEqual(check_lists(h.rec.ops, _final("a", "b", "c", "d")), [])

    def test_lost_ack(self) -> None:
        h = _History()
        h.add("a", result=1)
        h.add("b", result=2)
        self.assertIn("'b' (client 0) lost", " ".join(check_lists(h.rec.ops, _final("a"))))

    def test_duplicate(self) -> None:
        h = _History()
        h.add("a", result=1)
        h.read(["a", "a"])
        problems = " ".join(check_lists(h.rec.ops, _final("a", "a")))
        self.assertIn("'a' twice", problems)
        self.assertIn("2 times in the list", problems)

    def test_phantom(self) -> None:
        h = _History()
        h.add("a", result=1)
        self.assertIn("never sent", " ".join(check_lists(h.rec.ops, _final("a", "x"))))

    def test_not_prefix(self) -> None:
        h = _History()
        h.add("a", outcome="info")
        h.add("b", outcome="info")
        h.read(["a"])
        h.read(["b", "a"])
        self.assertIn(
            "reads disagree at index 0", " ".join(check_lists(h.rec.ops, _final("b", "a")))
        )

    def test_stale_read(self) -> None:
        h = _History()
        h.add("a", result=1)
        h.read([])
        self.assertIn("misses 1 values", " ".join(check_lists(h.rec.ops, _final("a"))))

    def test_wrong_position(self) -> None:
        h = _History()
        h.add("a", result=1)
        h.add("b", result=1)
        self.assertIn("at index 1", " ".join(check_lists(h.rec.ops, _final("a", "b"))))


class TransferChecker(unittest.TestCase):
    def _history(self, read: list[int | None], exec_reply: list[int]) -> Recorder:
        rec = Recorder()
        t = rec.invoke(0, "transfer", "a->b", [100, 100, 7])
        rec.done(t, "ok", exec_reply)  # type: ignore[arg-type]
        r = rec.invoke(1, "read", "accounts")
        rec.done(r, "ok", read)  # type: ignore[arg-type]
        lost = rec.invoke(2, "transfer", "b->a", [107, 93, 5])
        rec.done(lost, "info")
        return rec

    def test_good(self) -> None:
        rec = self._history([93, 107, 100], [93, 107])
        self.assertEqual(
            check_transfers(rec.ops, {0: [93, 107, 100], 1: [98, 102, 100]}, 3, 100)[:1],
            ["final reads differ between nodes: [[93, 107, 100], [98, 102, 100]]"],
        )
        self.assertEqual(
            check_transfers(rec.ops, {0: [98, 102, 100], 1: [98, 102, 100]}, 3, 100), []
        )

    def test_wrong_total(self) -> None:
        rec = self._history([93, 100, 100], [93, 107])
        problems = check_transfers(rec.ops, {0: [93, 107, 100]}, 3, 100)
        self.assertEqual(len(problems), 1)
        self.assertIn("total 293 != 300", problems[0])

    def test_wrong_final_total(self) -> None:
        rec = self._history([93, 107, 100], [93, 107])
        self.assertIn("total 301", " ".join(check_transfers(rec.ops, {0: [94, 107, 100]}, 3, 100)))

    def test_missing_and_negative(self) -> None:
        rec = self._history([None, 200, 100], [93, 107])
        problems = " ".join(check_transfers(rec.ops, {0: [-1, 201, 100]}, 3, 100))
        self.assertIn("missing balances", problems)
        self.assertIn("negative balance", problems)

    def test_isolation(self) -> None:
        rec = self._history([93, 107, 100], [86, 114])
        self.assertIn(
            "isolation broken", " ".join(check_transfers(rec.ops, {0: [93, 107, 100]}, 3, 100))
        )


class _Queue:
    """A queue history built in order (each call invokes and completes at
    once unless it returns the open op)."""

    def __init__(self) -> None:
        self.rec = Recorder()

    def push(self, value: str, outcome: str = "ok", key: str = "q") -> None:
        op = self.rec.invoke(0, "push", key, value)
        self.rec.done(op, outcome, 1 if outcome == "ok" else None)

    def pop(self, value: str | None, outcome: str = "ok", key: str = "q", client: int = 1) -> None:
        op = self.rec.invoke(client, "pop", key)
        if value is None or outcome != "ok":
            self.rec.done(op, "fail" if value is None else outcome)
        else:
            self.rec.done(op, "ok", [key, value])

    def check(self, *final: str, nodes: int = 3) -> str:
        views = {"q": {n: list(final) for n in range(nodes)}}
        return " | ".join(check_queue(self.rec.ops, views))


class QueueChecker(unittest.TestCase):
    def test_good(self) -> None:
        q = _Queue()
        q.push("a")
        q.push("b")
        q.pop("a")
        q.pop(None)
        q.push("c", outcome="info")
        q.push("d")
        q.pop("b", outcome="info")  # took b, or nothing
        self.assertEqual(q.check("c", "d"), "")
        self.assertEqual(q.check("b", "d"), "")
        self.assertEqual(q.check("b", "c", "d"), "")

    def test_popped_twice(self) -> None:
        q = _Queue()
        q.push("a")
        q.pop("a")
        q.pop("a", client=2)
        self.assertIn("'a' popped twice", q.check())

    def test_phantom_pop(self) -> None:
        q = _Queue()
        q.push("a")
        q.pop("zz")
        self.assertIn("never pushed", q.check("a"))

    def test_failed_push_popped(self) -> None:
        q = _Queue()
        q.push("a", outcome="fail")
        q.pop("a")
        self.assertIn("whose push failed", q.check())

    def test_popped_before_pushed(self) -> None:
        q = _Queue()
        q.pop("a")
        q.push("a", outcome="info")
        self.assertIn("before its push was invoked", q.check())

    def test_wrong_key(self) -> None:
        q = _Queue()
        q.push("a", key="other")
        q.pop("a")
        self.assertIn("pushed to other", q.check())

    def test_lost_push(self) -> None:
        q = _Queue()
        q.push("a")
        q.push("b")
        q.pop("a")
        self.assertIn("1 acknowledged pushes neither popped", q.check())

    def test_lost_push_covered_by_unknown_pop(self) -> None:
        q = _Queue()
        q.push("a")
        q.push("b")
        q.pop("x", outcome="info")
        self.assertEqual(q.check("b"), "")
        self.assertIn("2 acknowledged pushes", q.check())

    def test_popped_and_still_there(self) -> None:
        q = _Queue()
        q.push("a")
        q.pop("a")
        self.assertIn("popped and still in the final list", q.check("a"))

    def test_nodes_differ(self) -> None:
        q = _Queue()
        q.push("a")
        q.push("b")
        views = {"q": {0: ["a", "b"], 1: ["b", "a"]}}
        self.assertIn("final lists differ", " ".join(check_queue(q.rec.ops, views)))

    def test_duplicate_and_phantom_in_final(self) -> None:
        q = _Queue()
        q.push("a")
        problems = q.check("a", "a", "zz")
        self.assertIn("2 times in the final list", problems)
        self.assertIn("'zz', never pushed", problems)

    def test_not_fifo(self) -> None:
        q = _Queue()
        q.push("a")
        q.push("b")
        q.pop("b")
        self.assertIn("not FIFO", q.check("a"))

    def test_no_final_read(self) -> None:
        q = _Queue()
        q.push("a")
        self.assertIn("no final read", " ".join(check_queue(q.rec.ops, {})))
