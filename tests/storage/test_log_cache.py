"""The raft log is not held in memory: a bounded cache of recent entries,
older ones read back from LevelDB, terms and sizes from a compact index."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.raft.types import (
    CompactedError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    SnapshotMeta,
)
from eraft_twisted.storage.layout import log_key
from eraft_twisted.storage.leveldb import LevelDBStorage
from eraft_twisted.storage.memorydb import MemoryDB
from eraft_twisted.storage.raftlog import ENTRY_OVERHEAD, EntryCache, LogShape

from .test_log_semantics import _LevelDBAdapter

CONF = ConfState((1, 2, 3), ())
KIB = b"x" * 1024


def E(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(term, index, EntryType.NORMAL, data)


class CountingDB(MemoryDB):
    """A MemoryDB that counts point reads of log keys."""

    log_gets = 0

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        if key[:1] == b"L":
            self.log_gets += 1
        return super().get(key, default)


class TinyCacheLogTests(_LevelDBAdapter, SynchronousTestCase):
    """The whole log-semantics suite with a 2-entry cache: most reads hit the DB."""

    def make(self, conf: ConfState | None = None) -> Any:
        return LevelDBStorage.in_memory(conf, log_cache_entries=2)

    def reloaded(self, s: Any) -> Any:
        return LevelDBStorage.in_memory(db=s._db, log_cache_entries=2)


class NoCacheLogTests(_LevelDBAdapter, SynchronousTestCase):
    """The suite on real LevelDB files with no cache at all (0 bytes)."""

    def make(self, conf: ConfState | None = None) -> Any:
        s = LevelDBStorage.open(self.mktemp(), synchronous=True, conf=conf, log_cache_bytes=0)
        self.addCleanup(lambda: s.close())
        return s

    def reloaded(self, s: Any) -> Any:
        self.done(s.close())
        s2 = LevelDBStorage.open(s.path, synchronous=True, log_cache_bytes=0)
        self.addCleanup(lambda: s2.close())
        return s2


class BoundTests(SynchronousTestCase):
    def storage(self, db: MemoryDB | None = None, **kw: Any) -> LevelDBStorage:
        return LevelDBStorage.in_memory(CONF, db=db, **kw)

    def fill(self, s: LevelDBStorage, n: int, term: int = 1) -> list[Entry]:
        ents = [E(i, term + i // 50, b"%d:" % i + KIB) for i in range(1, n + 1)]
        for lo in range(0, n, 7):
            self.successResultOf(s.persist(ents[lo : lo + 7], HardState(term, 1, 0)))
        return ents

    def test_cache_is_bounded_by_bytes_and_evicted_entries_come_from_the_db(self) -> None:
        db = CountingDB()
        s = self.storage(db, log_cache_bytes=20 * (1024 + ENTRY_OVERHEAD + 8))
        ents = self.fill(s, 200)
        cache = s.log_cache
        self.assertLessEqual(cache.bytes, cache.max_bytes)
        self.assertEqual(len(cache), 20)
        self.assertEqual(cache.first_index(0), 181)
        # Recent entries: no disk read.
        self.assertEqual(s.entries(181, 201), ents[180:])
        self.assertEqual(db.log_gets, 0)
        # Old ones: read back exactly, one point read each.
        self.assertEqual(s.entries(1, 201), ents)
        self.assertEqual(db.log_gets, 180)
        # A byte budget stops the reads as soon as it is reached.
        db.log_gets = 0
        got = s.entries(10, 201, max_bytes=3 * ents[0].size() + 10)
        self.assertEqual(got, ents[9:12])
        self.assertEqual(db.log_gets, 4)
        # Terms and sizes of evicted entries cost no read.
        db.log_gets = 0
        self.assertEqual([s.term(i) for i in range(1, 201)], [e.term for e in ents])
        self.assertEqual(s.log_bytes(1, 201), sum(e.size() for e in ents))
        self.assertEqual(s.log_bytes(150, 160), sum(e.size() for e in ents[149:159]))
        self.assertEqual(db.log_gets, 0)

    def test_cache_is_bounded_by_count(self) -> None:
        s = self.storage(log_cache_entries=5)
        ents = self.fill(s, 30)
        self.assertEqual(len(s.log_cache), 5)
        self.assertEqual(s.entries(1, 31), ents)

    def test_truncation_and_compaction_reach_the_cache(self) -> None:
        s = self.storage(log_cache_entries=10)
        ents = self.fill(s, 30)
        # A new leader's entries replace a suffix that is partly cached.
        new = [E(25, 9, b"new25"), E(26, 9, b"new26")]
        self.successResultOf(s.persist(new))
        self.assertEqual(s.last_index(), 26)
        self.assertEqual(s.entries(1, 27), ents[:24] + new)
        self.assertEqual(s.term(26), 9)
        self.successResultOf(s.compact(22))
        self.assertEqual(s.log_cache.first_index(0), 23)
        self.assertEqual(s.entries(23, 27), ents[22:24] + new)
        self.assertRaises(CompactedError, s.entries, 22, 23)

    def test_an_entry_compacted_on_disk_meanwhile_is_reported_compacted(self) -> None:
        # The writer thread may run a compaction before the reactor learns of
        # it: the DB then lacks an entry the log still lists.
        db = MemoryDB()
        s = self.storage(db, log_cache_entries=3)
        ents = self.fill(s, 10)
        db.delete(log_key(1))
        db.delete(log_key(2))
        self.assertRaises(CompactedError, s.entries, 1, 5)
        self.assertEqual(s.entries(3, 5), ents[2:4])

    def test_restart_scans_the_log_in_bounded_memory(self) -> None:
        path = self.mktemp()
        s = LevelDBStorage.open(path, synchronous=True, conf=CONF)
        conf_change = Entry(3, 120, EntryType.CONF_CHANGE, b"cc")
        ents = self.fill(s, 300)
        self.successResultOf(s.persist([conf_change]))
        self.successResultOf(s.close())
        bound = 10 * (1024 + ENTRY_OVERHEAD + 8)
        s = LevelDBStorage.open(path, synchronous=True, log_cache_bytes=bound)
        self.addCleanup(s.close)
        self.assertLessEqual(s.log_cache.bytes, bound)
        self.assertEqual(s.log_cache.first_index(0), 111)
        self.assertEqual((s.first_index(), s.last_index()), (1, 120))
        self.assertEqual(s.entries(1, 120), ents[:119])
        self.assertEqual(s.term(119), ents[118].term)
        self.assertEqual(s.conf_entries(1, 121), [conf_change])
        self.assertEqual(s.conf_entries(1, 120), [])

    def test_restart_seeks_past_compacted_entries(self) -> None:
        # LevelDB keeps deleted entries in its files until it compacts them
        # away; a scan from the start of the log area would read them all.
        # Stand-ins here: keys below the compaction point that a scan would
        # trip over.
        db = MemoryDB()
        s = self.storage(db)
        self.fill(s, 20)
        self.successResultOf(s.compact(15))
        db.put(log_key(3), b"not an entry")
        s = self.storage(db)
        self.assertEqual((s.first_index(), s.last_index(), s.term(15)), (16, 20, 1))
        snap = SnapshotMeta(40, 5, CONF)
        self.successResultOf(s.apply_snapshot(snap, []))
        db.put(log_key(30), b"not an entry either")
        s = self.storage(db)
        self.assertEqual((s.first_index(), s.last_index(), s.term(40)), (41, 40, 5))

    def test_the_raft_core_starts_reading_only_membership_changes(self) -> None:
        import random

        from eraft_twisted.raft.confchange import encode_conf_change
        from eraft_twisted.raft.core import Config, Raft
        from eraft_twisted.raft.types import ConfChange, ConfChangeType

        db = CountingDB()
        s = self.storage(db, log_cache_entries=1)
        self.fill(s, 100)
        grown = ConfState((1, 2, 3, 4), ())
        cc = encode_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 4), grown)
        self.successResultOf(s.persist([Entry(3, 101, EntryType.CONF_CHANGE, cc), E(102, 3)]))
        s = self.storage(db, log_cache_entries=1)
        db.log_gets = 0
        raft = Raft(Config(1), s, random.Random(0))
        self.assertEqual((raft.conf, db.log_gets), (grown, 1))


class ShapeTests(SynchronousTestCase):
    def test_terms_are_runs(self) -> None:
        shape = LogShape(HardState(), CONF, SnapshotMeta(0, 0, CONF), E(0, 0))
        shape.append([E(i, 1 + i // 1000) for i in range(1, 5000)])
        self.assertEqual(len(shape._terms), 6)  # the dummy's term 0, then 1..5
        self.assertEqual(shape.term(999), 1)
        self.assertEqual(shape.term(1000), 2)
        shape.compact(2500)
        self.assertEqual((shape.term(2500), shape.term(3000), len(shape._terms)), (3, 4, 3))
        shape.append([E(2600, 9)])
        self.assertEqual((shape.last_index(), shape.term(2600), shape.term(2599)), (2600, 9, 3))

    def test_cache_larger_than_one_entry_keeps_none(self) -> None:
        cache = EntryCache(max_bytes=ENTRY_OVERHEAD + 100, max_entries=10)
        cache.append([E(1, 1, b"x" * 500)])
        self.assertEqual((len(cache), cache.bytes), (0, 0))
        cache.append([E(2, 1, b"y")])
        self.assertEqual(list(cache.iter_from(2, 3)), [E(2, 1, b"y")])
