"""Power cuts on the in-memory LevelDB twin: only what a sync covered survives."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IReactorFromThreads
from twisted.trial import unittest

from eraft_twisted.raft.types import ConfState, Entry, HardState, SnapshotMeta
from eraft_twisted.storage.layout import data_key
from eraft_twisted.storage.leveldb import LevelDBStorage
from eraft_twisted.storage.memorydb import MemoryDB
from eraft_twisted.storage.writer import Writer

CONF = ConfState((1, 2, 3))
reactor: IReactorFromThreads = _reactor  # type: ignore[assignment]


def ents(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, data=b"e%d" % i) for i in range(lo, hi + 1)]


class MemoryDBPowerCuts(unittest.SynchronousTestCase):
    def test_an_unsynced_write_is_read_but_lost_in_a_power_cut(self) -> None:
        db = MemoryDB()
        db.put(b"a", b"1", sync=True)
        with db.write_batch() as b:
            b.put(b"b", b"2")
            b.delete(b"a")
        self.assertEqual((db.get(b"a"), db.get(b"b")), (None, b"2"))
        self.assertEqual(db.unsynced_writes, 1)
        after = db.crash()
        self.assertEqual((after.get(b"a"), after.get(b"b")), (b"1", None))
        self.assertEqual(after.unsynced_writes, 0)

    def test_a_synced_write_makes_every_earlier_one_durable(self) -> None:
        db = MemoryDB()
        db.put(b"a", b"1")
        db.delete(b"x")
        b = db.write_batch(sync=True)
        b.put(b"b", b"2")
        b.write()
        db.put(b"c", b"3")
        after = db.crash()
        self.assertEqual(list(after.iterator()), [(b"a", b"1"), (b"b", b"2")])

    def test_sync_is_what_the_os_writing_back_does(self) -> None:
        db = MemoryDB()
        db.put(b"a", b"1")
        db.sync()
        self.assertEqual((db.syncs, db.crash().get(b"a")), (1, b"1"))

    def test_a_cut_may_keep_a_prefix_of_the_unsynced_writes(self) -> None:
        db = MemoryDB()
        for i in range(4):
            db.put(b"k%d" % i, b"v")
        self.assertEqual(len(list(db.crash(keep_unsynced=2).iterator())), 2)

    def test_the_dead_db_refuses_use(self) -> None:
        db = MemoryDB()
        db.crash()
        self.assertRaises(RuntimeError, db.get, b"a")
        self.assertRaises(RuntimeError, db.put, b"a", b"1")

    def test_a_process_crash_keeps_everything(self) -> None:
        # kill -9 keeps the OS cache: reopening the same object loses nothing.
        s = LevelDBStorage.in_memory(CONF)
        s.persist(ents(1, 3), HardState(1, 1, 3), sync=False)
        again = LevelDBStorage.in_memory(db=s._db)
        self.assertEqual(again.last_index(), 3)


class StoragePowerCuts(unittest.SynchronousTestCase):
    def reboot(self, s: LevelDBStorage, keep: int = 0) -> LevelDBStorage:
        return LevelDBStorage.in_memory(db=s._db.crash(keep))

    def test_a_new_database_is_durable_at_once(self) -> None:
        s = self.reboot(LevelDBStorage.in_memory(CONF))
        self.assertEqual(s.conf_state, CONF)
        self.assertEqual(s.last_index(), 0)

    def test_a_synced_persist_survives_and_an_unsynced_one_does_not(self) -> None:
        s = LevelDBStorage.in_memory(CONF)
        s.persist(ents(1, 3), HardState(1, 1, 0), sync=True)
        s.persist([], HardState(1, 1, 3), sync=False)  # a commit-only Ready
        s.persist(ents(4, 5), None, sync=False)
        s = self.reboot(s)
        self.assertEqual((s.last_index(), s.hard_state), (3, HardState(1, 1, 0)))

    def test_applied_data_is_lost_with_its_index(self) -> None:
        def build() -> LevelDBStorage:
            s = LevelDBStorage.in_memory(CONF)
            s.persist(ents(1, 3), HardState(1, 1, 3), sync=True)
            s.apply_ops([(data_key(b"k1"), b"v1")], 1)
            s.apply_ops([(data_key(b"k2"), b"v2")], 2)
            return s

        for keep, applied, keys in ((0, 0, []), (1, 1, [b"k1"]), (2, 2, [b"k1", b"k2"])):
            r = self.reboot(build(), keep)
            self.assertEqual(r.applied_index(), applied)
            self.assertEqual(sorted(k for k, _ in r.scan(0, 16383)), keys)

    def test_a_barrier_makes_applied_data_durable(self) -> None:
        s = LevelDBStorage.in_memory(CONF)
        s.persist(ents(1, 2), HardState(1, 1, 2), sync=True)
        s.apply_ops([(data_key(b"k"), b"v")], 2)
        s.barrier(sync=True)
        s = self.reboot(s)
        self.assertEqual((s.applied_index(), s.get(b"k")), (2, b"v"))

    def test_fsync_never_loses_even_what_asked_for_a_sync(self) -> None:
        s = LevelDBStorage(MemoryDB(), synchronous=True, fsync="never", conf=CONF)
        s.persist(ents(1, 3), HardState(1, 1, 3), sync=True)
        s = self.reboot(s)
        self.assertEqual(s.last_index(), 0)

    def test_every_power_cut_during_a_snapshot_install_recovers(self) -> None:
        def build() -> LevelDBStorage:
            s = LevelDBStorage.in_memory(CONF)
            s.persist(ents(1, 4), HardState(1, 1, 4), sync=True)
            s.apply_ops([(data_key(b"old%d" % i), b"o") for i in range(5)], 4)
            s.install_chunk = 2
            items = [(data_key(b"new%d" % i), b"n") for i in range(5)]
            s.apply_snapshot(SnapshotMeta(10, 2, CONF), items)
            s.persist(ents(11, 12, term=2), HardState(2, 1, 12), sync=False)
            return s

        unsynced = build()._db.unsynced_writes
        self.assertGreater(unsynced, 0)
        outcomes = set()
        for keep in range(unsynced + 1):
            s = self.reboot(build(), keep)
            keys = sorted(k for k, _ in s.scan(0, 16383))
            self.assertEqual(s.snapshot().meta.index, 10)
            self.assertEqual(s.applied_index(), 10)
            self.assertEqual(keys, sorted(b"new%d" % i for i in range(5)))
            outcomes.add(s.last_index())
        # The synced install always survives; the unsynced append only sometimes.
        self.assertEqual(outcomes, {10, 12})


class ThreadedWriterPowerCuts(unittest.TestCase):
    @inlineCallbacks
    def test_group_commit_syncs_the_whole_group(self) -> Any:
        db = MemoryDB()
        w = Writer(db, reactor)
        first = w.submit([(b"a", b"1")], sync=False)
        second = w.submit([(b"b", b"2")], sync=True)
        yield first
        yield second
        yield w.stop()
        after = db.crash()
        self.assertEqual(list(after.iterator()), [(b"a", b"1"), (b"b", b"2")])

    def test_unsynced_submissions_are_lost(self) -> Deferred[None]:
        db = MemoryDB()
        w = Writer(db, reactor)
        d = w.submit([(b"a", b"1")], sync=False)
        d.addCallback(lambda _: w.stop())
        d.addCallback(lambda _: self.assertIsNone(db.crash().get(b"a")))
        return d
