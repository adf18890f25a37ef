"""Tests for the group-commit writer thread."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from eraft_twisted.storage.memorydb import MemoryDB
from eraft_twisted.storage.writer import Writer, WriterStopped

from .helpers import RecordingDB


class SynchronousWriterTests(SynchronousTestCase):
    def test_writes_inline(self) -> None:
        db = MemoryDB()
        w = Writer(db, synchronous=True)
        d = w.submit([(b"a", b"1"), (b"b", b"2")], sync=True)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(db.get(b"a"), b"1")
        self.successResultOf(w.submit([(b"a", None)]))
        self.assertIsNone(db.get(b"a"))
        self.assertEqual((w.stats.batches, w.stats.synced_batches, w.stats.ops), (2, 1, 3))

    def test_later_ops_win(self) -> None:
        db = MemoryDB()
        w = Writer(db, synchronous=True)
        w.submit([(b"k", b"1"), (b"k", b"2"), (b"j", b"x"), (b"j", None)])
        self.assertEqual(db.get(b"k"), b"2")
        self.assertIsNone(db.get(b"j"))

    def test_error_fails_deferred(self) -> None:
        w = Writer(MemoryDB(), synchronous=True)
        f = self.failureResultOf(w.submit([("not bytes", b"v")]), TypeError)  # type: ignore[list-item]
        self.assertIsInstance(f.value, TypeError)

    def test_job(self) -> None:
        db = MemoryDB()
        w = Writer(db, synchronous=True)
        w.submit([(b"k", b"v")])
        self.assertEqual(self.successResultOf(w.run_job(lambda db: db.get(b"k"))), b"v")
        self.failureResultOf(w.run_job(lambda db: 1 // 0), ZeroDivisionError)

    def test_stop(self) -> None:
        w = Writer(MemoryDB(), synchronous=True)
        self.successResultOf(w.stop())
        self.assertTrue(w.stopped)
        self.failureResultOf(w.submit([(b"k", b"v")]), WriterStopped)
        self.failureResultOf(w.run_job(lambda db: None), WriterStopped)

    def test_fsync_never(self) -> None:
        db = RecordingDB()
        w = Writer(db, synchronous=True, fsync="never")
        w.submit([(b"k", b"v")], sync=True)
        self.assertEqual(db.batches, [(False, [(b"k", b"v")])])
        self.assertFalse(w.will_sync(True))

    def test_sync_only_when_asked(self) -> None:
        db = RecordingDB()
        w = Writer(db, synchronous=True)
        w.submit([(b"a", b"1")], sync=False)
        w.submit([(b"b", b"1")], sync=True)
        self.assertEqual([s for s, _ in db.batches], [False, True])

    def test_bad_arguments(self) -> None:
        self.assertRaises(ValueError, Writer, MemoryDB(), synchronous=True, fsync="sometimes")
        self.assertRaises(TypeError, Writer, MemoryDB())

    def test_slow_write_is_logged(self) -> None:
        now = [0.0]

        def clock() -> float:
            now[0] += 0.6
            return now[0]

        w = Writer(MemoryDB(), synchronous=True, clock=clock)
        with capturedLogs() as events:
            w.submit([(b"k", b"v")], sync=True)
        slow = [e for e in events if "slow storage write" in e.get("log_format", "")]
        self.assertEqual(len(slow), 1)
        self.assertAlmostEqual(slow[0]["seconds"], 0.6)
        self.assertEqual(w.stats.slow_writes, 1)


class ThreadedWriterTests(TestCase):
    def writer(self, db: Any, **kw: Any) -> Writer:
        w = Writer(db, reactor, **kw)
        self.addCleanup(self._stop, w, db)
        return w

    def _stop(self, w: Writer, db: Any) -> Deferred[None]:
        if isinstance(db, RecordingDB):
            db.gate.set()
        return w.stop()

    @inlineCallbacks
    def test_group_commit(self) -> Generator[Deferred[Any], Any, None]:
        """Everything submitted while a write blocks goes into the next single batch."""
        db = RecordingDB()
        db.gate.clear()
        w = self.writer(db)
        fired: list[int] = []
        ds = [w.submit([(b"k0", b"0")], sync=True)]
        self.assertTrue(db.entered.wait(5))
        for i in range(1, 51):
            ds.append(w.submit([(b"k%02d" % i, b"%d" % i)], sync=(i == 25)))
        for i, d in enumerate(ds):
            d.addCallback(lambda _, i=i: fired.append(i))
        self.assertEqual(w.pending, 51)
        db.gate.set()
        yield gatherResults(ds)
        self.assertEqual(fired, list(range(51)))
        self.assertEqual(len(db.batches), 2)
        self.assertEqual(db.batches[0], (True, [(b"k0", b"0")]))
        sync, ops = db.batches[1]
        self.assertTrue(sync, "one member asked for sync")
        self.assertEqual(ops, [(b"k%02d" % i, b"%d" % i) for i in range(1, 51)])
        self.assertEqual((w.stats.batches, w.stats.largest_group), (2, 50))
        self.assertEqual(w.pending, 0)

    @inlineCallbacks
    def test_group_without_sync(self) -> Generator[Deferred[Any], Any, None]:
        db = RecordingDB()
        db.gate.clear()
        w = self.writer(db)
        ds = [w.submit([(b"a", b"1")], sync=True)]
        self.assertTrue(db.entered.wait(5))
        ds += [w.submit([(b"b", b"%d" % i)]) for i in range(5)]
        db.gate.set()
        yield gatherResults(ds)
        self.assertEqual([s for s, _ in db.batches], [True, False])
        self.assertEqual(db.inner.get(b"b"), b"4")

    @inlineCallbacks
    def test_group_size_bounded(self) -> Generator[Deferred[Any], Any, None]:
        db = RecordingDB()
        db.gate.clear()
        w = self.writer(db, max_group_ops=10)
        ds = [w.submit([(b"a", b"1")])]
        self.assertTrue(db.entered.wait(5))
        ds += [w.submit([(b"b%d" % i, b"x")] * 4) for i in range(6)]
        db.gate.set()
        yield gatherResults(ds)
        self.assertEqual([len(ops) for _, ops in db.batches], [1, 12, 12])

    @inlineCallbacks
    def test_error_fails_whole_batch_only(self) -> Generator[Deferred[Any], Any, None]:
        db = RecordingDB()
        db.fail_on = b"bad"
        db.gate.clear()
        w = self.writer(db)
        first = w.submit([(b"ok", b"1")])
        self.assertTrue(db.entered.wait(5))
        group = [w.submit([(k, b"v")]) for k in (b"a", b"bad", b"c")]
        db.gate.set()
        yield first
        for d in group:
            yield self.assertFailure(d, OSError)
        yield w.submit([(b"after", b"v")])
        self.assertEqual(db.inner.get(b"after"), b"v")
        self.assertIsNone(db.inner.get(b"a"))

    @inlineCallbacks
    def test_job_is_ordered(self) -> Generator[Deferred[Any], Any, None]:
        db = MemoryDB()
        w = self.writer(db)
        w.submit([(b"k", b"1")])
        seen = w.run_job(lambda db: db.get(b"k"))
        w.submit([(b"k", b"2")])
        self.assertEqual((yield seen), b"1")
        yield self.assertFailure(w.run_job(lambda db: 1 // 0), ZeroDivisionError)
        self.assertEqual((yield w.run_job(lambda db: db.get(b"k"))), b"2")

    @inlineCallbacks
    def test_stop_drains(self) -> Generator[Deferred[Any], Any, None]:
        db = RecordingDB()
        db.gate.clear()
        w = self.writer(db)
        events: list[str] = []
        for i in range(5):
            w.submit([(b"k%d" % i, b"v")]).addCallback(lambda _, i=i: events.append(f"w{i}"))
        stopped = w.stop().addCallback(lambda _: events.append("stopped"))
        self.failureResultOf(w.submit([(b"late", b"v")]), WriterStopped)
        db.gate.set()
        yield stopped
        self.assertEqual(events, [f"w{i}" for i in range(5)] + ["stopped"])
        self.assertEqual(len(db.inner._items), 5)
        yield w.stop()  # idempotent
