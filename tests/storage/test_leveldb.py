"""Tests for LevelDBStorage on real LevelDB files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Generator
from typing import Any

import plyvel
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from eraft_twisted.hashslot import key_hash_slot
from eraft_twisted.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
)
from eraft_twisted.storage.layout import (
    INSTALL_KEY,
    STAGING_PREFIX,
    data_key,
    encode_items,
    sm_meta_key,
)
from eraft_twisted.storage.leveldb import (
    LevelDBStorage,
    StorageCorrupt,
    StorageFailed,
    StorageLocked,
)
from eraft_twisted.storage.memorydb import MemoryDB
from eraft_twisted.storage.writer import WriterStopped

from .helpers import Crash, CrashingDB

CONF = ConfState((1, 2, 3), ())
CONF2 = ConfState((1, 2, 3), (4,))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def E(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(term, index, EntryType.NORMAL, data)


class _Base(SynchronousTestCase):
    def open(self, path: str | None = None, **kw: Any) -> LevelDBStorage:
        s = LevelDBStorage.open(path or self.mktemp(), synchronous=True, **kw)
        self.addCleanup(s.close)
        return s

    def reopen(self, s: LevelDBStorage) -> LevelDBStorage:
        self.successResultOf(s.close())
        return self.open(s.path)

    def ok(self, d: Deferred[Any]) -> Any:
        return self.successResultOf(d)

    def fill(self, s: LevelDBStorage, n: int, term: int = 1) -> None:
        """Log 1..n, each entry applied as key k<i> = v<i>."""
        self.ok(s.persist([E(i, term, b"v%d" % i) for i in range(1, n + 1)], HardState(term, 1, n)))
        for i in range(1, n + 1):
            self.ok(s.apply_ops([(data_key(b"k%d" % i), b"v%d" % i)], i))


class OpenTests(_Base):
    def test_new_and_existing(self) -> None:
        s = self.open(conf=CONF)
        self.assertTrue(s.is_new)
        self.assertEqual(s.conf_state, CONF)
        self.assertEqual((s.applied_index(), s.applied_term()), (0, 0))
        s.close()
        s2 = self.open(s.path, conf=CONF2)
        self.assertFalse(s2.is_new)
        self.assertEqual(s2.conf_state, CONF, "conf only seeds a new database")

    def test_locked_same_process(self) -> None:
        s = self.open()
        e = self.assertRaises(StorageLocked, LevelDBStorage.open, s.path, synchronous=True)
        self.assertEqual(str(e), f"data directory {s.path} is in use by another process")

    def test_locked_other_process(self) -> None:
        s = self.open(os.path.abspath(self.mktemp()))
        code = (
            "import sys\n"
            "from eraft_twisted.storage.leveldb import LevelDBStorage, StorageLocked\n"
            "try:\n"
            "    LevelDBStorage.open(sys.argv[1], synchronous=True)\n"
            "except StorageLocked as e:\n"
            "    print(e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, s.path],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.assertEqual(
            out.stdout.strip(), f"data directory {s.path} is in use by another process"
        )

    def test_foreign_leveldb(self) -> None:
        path = self.mktemp()
        db = plyvel.DB(path, create_if_missing=True)
        db.put(b"hello", b"world")
        db.close()
        self.assertRaises(StorageCorrupt, LevelDBStorage.open, path, synchronous=True)
        # and the failed open released the lock
        db = plyvel.DB(path)
        db.close()


class RecoveryTests(_Base):
    def test_reopen_recovers_everything(self) -> None:
        s = self.open(conf=CONF)
        self.fill(s, 10, term=2)
        self.ok(s.apply_ops([(sm_meta_key(b"session"), b"42")], 10, CONF2))
        self.ok(s.create_snapshot(8))
        self.ok(s.compact(6))
        self.ok(s.persist([E(11, 3, b"eleven")], HardState(3, 2, 10)))
        s = self.reopen(s)
        self.assertEqual(s.initial_state(), (HardState(3, 2, 10), CONF2))
        self.assertEqual((s.first_index(), s.last_index()), (7, 11))
        self.assertEqual(s.term(6), 2)
        self.assertEqual(s.entries(7, 12)[-1], E(11, 3, b"eleven"))
        self.assertEqual(s.snapshot().meta, SnapshotMeta(8, 2, CONF2))
        self.assertEqual((s.applied_index(), s.applied_term()), (10, 2))
        self.assertEqual(s.get(b"k3"), b"v3")
        self.assertEqual(s.get_raw(sm_meta_key(b"session")), b"42")
        self.assertIsNone(s.get(b"k11"))

    def test_apply_ops_validation(self) -> None:
        s = self.open()
        self.fill(s, 3)
        self.assertRaises(ValueError, s.apply_ops, [(b"Mhard", b"x")], 3)
        self.assertRaises(ValueError, s.apply_ops, [(data_key(b"a"), b"x")], 2)
        self.assertIsNone(s.get(b"a"))
        self.assertEqual(s.applied_index(), 3)

    def test_apply_ops_is_atomic_with_applied_index(self) -> None:
        """A failed apply batch leaves neither the data nor the applied index."""
        path = self.mktemp()
        s = self.open(path)
        self.fill(s, 2)
        self.successResultOf(s.close())
        raw = plyvel.DB(path)
        crashing = CrashingDB(raw, crash_at=1)
        s = LevelDBStorage(crashing, synchronous=True, path=path)
        crashing.armed = True
        self.failureResultOf(s.apply_ops([(data_key(b"x"), b"1")], 2), Crash)
        raw.close()
        s = self.open(path)
        self.assertEqual(s.applied_index(), 2)
        self.assertIsNone(s.get(b"x"))

    def test_write_failure_breaks_storage(self) -> None:
        path = self.mktemp()
        self.successResultOf(self.open(path).close())
        raw = plyvel.DB(path)
        self.addCleanup(raw.close)
        crashing = CrashingDB(raw, crash_at=2)
        s = LevelDBStorage(crashing, synchronous=True, path=path)
        crashing.armed = True
        self.ok(s.persist([E(1, 1)]))
        self.failureResultOf(s.persist([E(2, 1)]), Crash)
        crashing.crash_at = 10**9  # the disk "recovers"; the storage must not
        self.failureResultOf(s.persist([E(3, 1)]), StorageFailed)
        self.failureResultOf(s.apply_ops([], 1), StorageFailed)
        self.assertEqual(s.last_index(), 1)

    def test_close_then_write(self) -> None:
        s = self.open()
        self.ok(s.close())
        self.failureResultOf(s.persist([E(1, 1)]), WriterStopped)
        self.ok(s.close())


class KVTests(_Base):
    def test_get_overlay(self) -> None:
        """get() sees an apply whose write has not completed; scan does not."""
        s = LevelDBStorage.in_memory(CONF)
        self.fill(s, 1)
        d: Deferred[None] = Deferred()
        real = s._writer.submit
        s._writer.submit = lambda ops, sync=False: d.addCallback(lambda _: real(ops, sync))  # type: ignore[method-assign]
        done = s.apply_ops([(data_key(b"k1"), None), (data_key(b"new"), b"n")], 1)
        self.assertNoResult(done)
        self.assertIsNone(s.get(b"k1"))
        self.assertEqual(s.get(b"new"), b"n")
        self.assertEqual(dict(s.scan(0, 16383)), {b"k1": b"v1"})
        self.assertEqual(s.pending_overlay(), {data_key(b"k1"): None, data_key(b"new"): b"n"})
        d.callback(None)
        self.ok(done)
        self.assertEqual(s.pending_overlay(), {})
        self.assertEqual(dict(s.scan(0, 16383)), {b"new": b"n"})

    def test_scan(self) -> None:
        s = self.open()
        keys = [b"foo", b"bar", b"hello", b"{t}a", b"{t}b", b"{t}c", b"x%d" % 7]
        self.ok(s.persist([E(1, 1)]))
        self.ok(s.apply_ops([(data_key(k), k.upper()) for k in keys], 1))
        got = list(s.scan(0, 16383))
        self.assertEqual(
            got,
            sorted(((k, k.upper()) for k in keys), key=lambda kv: (key_hash_slot(kv[0]), kv[0])),
        )
        slot = key_hash_slot(b"{t}")
        self.assertEqual([k for k, _ in s.scan(slot, slot)], [b"{t}a", b"{t}b", b"{t}c"])
        self.assertEqual(
            [k for k, _ in s.scan(slot, slot, start_after=b"{t}a")], [b"{t}b", b"{t}c"]
        )
        self.assertEqual([k for k, _ in s.scan(slot, slot, count=2)], [b"{t}a", b"{t}b"])
        self.assertEqual([k for k, _ in s.scan(slot, slot, start_after=b"{t}c")], [])
        # a cursor from a lower slot starts at the range; one from a higher slot ends it
        self.assertEqual(
            len(list(s.scan(slot, slot, start_after=b"hello"))),
            3 if key_hash_slot(b"hello") < slot else 0,
        )
        foo = key_hash_slot(b"foo")
        self.assertEqual(
            [k for k, _ in s.scan(foo, 16383)], [k for k, _ in got if key_hash_slot(k) >= foo]
        )
        self.assertRaises(ValueError, s.scan, 5, 4)
        self.assertRaises(ValueError, s.scan, 0, 16384)

    def test_db_snapshot_is_frozen_and_described(self) -> None:
        s = self.open(conf=CONF)
        self.fill(s, 5, term=3)
        snap = s.db_snapshot()
        self.addCleanup(snap.close)
        self.ok(s.persist([E(6, 4)]))
        self.ok(s.apply_ops([(data_key(b"k1"), b"changed"), (data_key(b"k9"), b"new")], 6, CONF2))
        self.assertEqual(s.snapshot_meta_at(snap), SnapshotMeta(5, 3, CONF))
        self.assertEqual(s.get(b"k1", snap), b"v1")
        self.assertIsNone(s.get(b"k9", snap))
        self.assertEqual(len(list(s.scan(0, 16383, snapshot=snap))), 5)
        items = dict(s.snapshot_items(snap))
        self.assertEqual(items, {data_key(b"k%d" % i): b"v%d" % i for i in range(1, 6)})
        self.assertEqual(s.get(b"k1"), b"changed")
        meta, snap2 = s.outgoing_snapshot()
        self.addCleanup(snap2.close)
        self.assertEqual(meta, SnapshotMeta(6, 4, CONF2))
        self.assertEqual(s.get(b"k9", snap2), b"new")

    def test_a_snapshot_without_raft_position_is_corrupt(self) -> None:
        s = self.open(conf=CONF)
        self.assertRaises(StorageCorrupt, s.snapshot_meta_at, MemoryDB().snapshot())


class SnapshotInstallTests(_Base):
    def sender(self) -> tuple[LevelDBStorage, SnapshotMeta, list[tuple[bytes, bytes]]]:
        s = self.open(conf=CONF2)
        self.ok(s.persist([E(i, 7) for i in range(1, 101)], HardState(7, 1, 100)))
        self.ok(s.apply_ops([(data_key(b"n%d" % i), b"%d" % i) for i in range(7)], 50))
        self.ok(s.apply_ops([(sm_meta_key(b"sessions"), b"s")], 100))
        snap = s.db_snapshot()
        meta = s.snapshot_meta_at(snap)
        items = list(s.snapshot_items(snap))
        snap.close()
        return s, meta, items

    def receiver(self, path: str | None = None) -> LevelDBStorage:
        r = self.open(path, conf=CONF)
        self.fill(r, 5, term=2)
        return r

    def test_ship_snapshot(self) -> None:
        s, meta, items = self.sender()
        self.ok(s.apply_ops([(data_key(b"late"), b"x")], 100))
        self.assertEqual(meta, SnapshotMeta(100, 7, CONF2))
        self.assertEqual(len(items), 8)
        r = self.receiver()
        r.install_chunk = 3
        self.assertTrue(self.ok(r.apply_snapshot(meta, iter(items))))

        def check(r: LevelDBStorage) -> None:
            self.assertEqual(dict(r.scan(0, 16383)), {b"n%d" % i: b"%d" % i for i in range(7)})
            self.assertEqual(r.get_raw(sm_meta_key(b"sessions")), b"s")
            self.assertIsNone(r.get(b"k1"))
            self.assertIsNone(r.get(b"late"))
            self.assertEqual((r.applied_index(), r.applied_term()), (100, 7))
            self.assertEqual(r.snapshot().meta, meta)
            self.assertEqual((r.first_index(), r.last_index(), r.term(100)), (101, 100, 7))
            self.assertEqual(r.initial_state(), (HardState(2, 1, 100), CONF2))
            self.assertEqual(list(r._db.iterator(prefix=STAGING_PREFIX)), [])

        check(r)
        check(self.reopen(r))

    def test_install_snapshot_inline_and_staged(self) -> None:
        _, meta, items = self.sender()
        r = self.receiver()
        self.assertTrue(self.ok(r.install_snapshot(Snapshot(meta, encode_items(items)))))
        self.assertEqual(dict(r.snapshot_items(r.db_snapshot())), dict(items))
        r2 = self.receiver()
        self.ok(r2.begin_snapshot_install())
        self.ok(r2.stage_snapshot_items(items[:3]))
        self.ok(r2.stage_snapshot_items(items[3:]))
        self.assertEqual(r2.get(b"k1"), b"v1", "staging changes nothing live")
        self.assertTrue(self.ok(r2.install_snapshot(Snapshot(meta))))
        self.assertEqual(dict(r2.snapshot_items(r2.db_snapshot())), dict(items))
        self.assertEqual(r2.applied_index(), 100)

    def test_stale_snapshot_ignored(self) -> None:
        r = self.receiver()
        self.ok(r.create_snapshot(4))
        self.assertFalse(
            self.ok(r.apply_snapshot(SnapshotMeta(4, 2, CONF2), [(data_key(b"z"), b"z")]))
        )
        self.assertEqual(r.get(b"k1"), b"v1")
        self.assertIsNone(r.get(b"z"))

    def test_bad_item_key(self) -> None:
        r = self.receiver()
        self.assertRaises(ValueError, r.stage_snapshot_items, [(b"Mhard", b"x")])

    def test_crash_at_every_write(self) -> None:
        """Dying before any write of an install leaves the old node or the new one."""
        _, meta, items = self.sender()
        outcomes = []
        crash_at = 0
        new_state = None
        while True:
            crash_at += 1
            path = self.mktemp()
            r = self.receiver(path)
            old_state = self.state(r)
            self.ok(r.close())
            raw = plyvel.DB(path)
            crashing = CrashingDB(raw, crash_at)
            r = LevelDBStorage(crashing, synchronous=True, path=path)
            r.install_chunk = 3
            crashing.armed = True
            d = r.apply_snapshot(meta, items)
            if not crashing.crashed:
                self.assertTrue(self.ok(d))
            else:
                self.failureResultOf(d, Crash)
            raw.close()
            r = self.open(path)
            state = self.state(r)
            self.assertIsNone(r._db.get(INSTALL_KEY))
            self.assertEqual(list(r._db.iterator(prefix=STAGING_PREFIX)), [])
            if not crashing.crashed:
                new_state = state
                break
            outcomes.append(state)
            self.assertLess(crash_at, 100)
        self.assertNotEqual(old_state, new_state)
        kinds = ["old" if o == old_state else "new" if o == new_state else "torn" for o in outcomes]
        self.assertNotIn("torn", kinds)
        # old up to the commit batch, new from then on
        first_new = kinds.index("new")
        self.assertEqual(kinds, ["old"] * first_new + ["new"] * (len(kinds) - first_new))
        self.assertGreater(first_new, 3, "staging took several writes")
        self.assertGreater(len(kinds) - first_new, 3, "moving took several writes")

    def state(self, s: LevelDBStorage) -> Any:
        return (
            s.applied_index(),
            s.first_index(),
            s.last_index(),
            s.snapshot().meta,
            s.initial_state(),
            list(s.scan_raw(b"S")),
        )


class ThreadedTests(TestCase):
    """The storage with its real writer thread on the running reactor."""

    @inlineCallbacks
    def test_pipelined_writes_and_reopen(self) -> Generator[Deferred[Any], Any, None]:
        path = self.mktemp()
        s = LevelDBStorage.open(path, reactor=reactor, conf=CONF)  # type: ignore[arg-type]
        fired: list[int] = []
        ds = []
        self.assertFalse(s.synchronous)
        for i in range(1, 41):
            d = s.persist([E(i, 1, b"a%d" % i)], HardState(1, 1, i - 1), i % 2 == 0)
            ds.append(d.addCallback(lambda _, i=i: fired.append(i)))
        # a new leader overwrites 31..40 while those writes are still queued
        ds.append(s.persist([E(31, 2, b"b31"), E(32, 2, b"b32")], HardState(2, 2, 30)))
        ds.append(s.apply_ops([(data_key(b"x"), b"1")], 30, CONF2))
        self.assertEqual(s.applied_index(), 0, "mirror moves on completion only")
        yield gatherResults(ds)
        self.assertEqual(fired, list(range(1, 41)))
        self.assertEqual(s.last_index(), 32)
        self.assertEqual(s.entries(31, 33), [E(31, 2, b"b31"), E(32, 2, b"b32")])
        self.assertLess(s.writer.stats.batches, 42)
        yield s.close()
        s = LevelDBStorage.open(path, reactor=reactor)  # type: ignore[arg-type]
        self.addCleanup(s.close)
        self.assertEqual(s.last_index(), 32)
        self.assertEqual(s.entries(30, 33)[0], E(30, 1, b"a30"))
        self.assertEqual(s.initial_state(), (HardState(2, 2, 30), CONF2))
        self.assertEqual((s.applied_index(), s.get(b"x")), (30, b"1"))


class CrashTests(SynchronousTestCase):
    def test_sigkill_keeps_acknowledged_writes(self) -> None:
        """Kill a writing process with SIGKILL; everything it was told is written survives."""
        path = os.path.abspath(self.mktemp())
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.crash_child", path],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        watchdog = threading.Timer(30, proc.kill)
        watchdog.start()
        persisted = applied = 0
        try:
            assert proc.stdout is not None
            self.assertEqual(proc.stdout.readline().strip(), "READY")
            while persisted < 300:
                line = proc.stdout.readline()
                self.assertTrue(line, "child died early")
                kind, index = line.split()
                if kind == "P":
                    persisted = max(persisted, int(index))
                else:
                    applied = max(applied, int(index))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.assertEqual(proc.returncode, -signal.SIGKILL)
        s = LevelDBStorage.open(path, synchronous=True)
        self.addCleanup(s.close)
        last = s.last_index()
        self.assertGreaterEqual(last, persisted)
        self.assertEqual(s.entries(1, last + 1), [E(i, 1, b"v%d" % i) for i in range(1, last + 1)])
        self.assertEqual(s.hard_state, HardState(1, 0, last))
        done = s.applied_index()
        self.assertGreaterEqual(done, applied)
        for i in range(1, last + 9):
            self.assertEqual(s.get(b"k%d" % i), b"v%d" % i if i <= done else None, i)
