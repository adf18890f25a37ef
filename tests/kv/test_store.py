"""KVStore over a real in-memory LevelDBStorage: staging, scans, expiry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from eraft_twisted.hashslot import key_hash_slot
from eraft_twisted.kv.app import KVApplication
from eraft_twisted.kv.statemachine import Op, encode_op
from eraft_twisted.kv.store import KVStore
from eraft_twisted.raft.types import ConfState, Entry, EntryType
from eraft_twisted.storage.leveldb import LevelDBStorage


class _Applying(unittest.TestCase):
    """Applies encoded operations as committed entries, one batch a call."""

    app: KVApplication
    index = 0

    def apply(self, *ops: bytes) -> list[object]:
        entries = []
        for data in ops:
            self.index += 1
            entries.append(Entry(1, self.index, EntryType.NORMAL, data))
        return self.app.apply_batch(entries)


class StoreTests(_Applying):
    def setUp(self) -> None:
        self.storage = LevelDBStorage.in_memory(ConfState((0,)))
        self.storage.persist([Entry(1, i) for i in range(1, 200)])
        self.store = KVStore(self.storage, None)
        self.app = KVApplication(self.store)

    def test_batch_sees_its_own_writes(self) -> None:
        results = self.apply(
            encode_op(Op.INCRBY, 0, b"n", 1),
            encode_op(Op.INCRBY, 0, b"n", 1),
            encode_op(Op.INCRBY, 0, b"n", 5),
        )
        self.assertEqual(results, [1, 2, 7])
        self.assertEqual(self.store.get(b"n", 0), b"7")
        self.assertEqual(self.storage.applied_index(), 3)

    def test_scan_visits_every_key_once_by_slot(self) -> None:
        keys = [b"k%d" % i for i in range(300)]
        self.apply(encode_op(Op.MSET, 0, [x for k in keys for x in (k, b"v")]))
        seen: list[bytes] = []
        cursor = 0
        while True:
            d = self.store.scan(cursor, 25, None, 0)
            cursor, batch = self.successResultOf(d)
            seen.extend(batch)
            if cursor == 0:
                break
            # Every key returned so far lies in a slot below the cursor.
            self.assertTrue(all(key_hash_slot(k) < cursor for k in seen))
        self.assertEqual(sorted(seen), sorted(keys))
        self.assertEqual(self.successResultOf(self.store.keys(b"k1?", 0)).__len__(), 10)
        self.assertEqual(self.successResultOf(self.store.count(0)), 300)

    def test_scan_stops_at_its_end_slot(self) -> None:
        keys = [b"k%d" % i for i in range(300)]
        self.apply(encode_op(Op.MSET, 0, [x for k in keys for x in (k, b"v")]))
        cursor, batch = self.successResultOf(self.store.scan(0, 1000, None, 0, None, 8192))
        self.assertEqual(cursor, 8192)
        self.assertEqual(sorted(batch), sorted(k for k in keys if key_hash_slot(k) < 8192))
        cursor, batch = self.successResultOf(self.store.scan(8192, 1000, None, 0))
        self.assertEqual(cursor, 0)
        self.assertEqual(sorted(batch), sorted(k for k in keys if key_hash_slot(k) >= 8192))

    def test_expiry_heap_only_returns_current_deadlines(self) -> None:
        self.apply(
            encode_op(Op.SET, 0, b"a", b"1", 100, 0, False),
            encode_op(Op.SET, 0, b"b", b"1", 100, 0, False),
            encode_op(Op.SET, 0, b"b", b"2", 0, 0, False),  # b no longer expires
            encode_op(Op.SET, 0, b"c", b"1", 500, 0, False),
        )
        self.assertEqual(self.store.expired_keys(50, 10), [])
        self.assertEqual(self.store.expired_keys(150, 10), [b"a"])
        self.assertEqual(self.store.expired_keys(150, 10), [])
        self.apply(encode_op(Op.EXPIRE_SWEEP, 150, [b"a"]))
        self.assertIsNone(self.store.get_record(b"a"))
        self.assertEqual(self.successResultOf(self.store.count(150)), 2)

    def test_expiry_heap_rebuilt_from_disk(self) -> None:
        self.apply(encode_op(Op.SET, 0, b"x", b"1", 100, 0, False))
        fresh = KVStore(self.storage, None)
        self.assertEqual(self.successResultOf(fresh.load_expiry()), 1)
        self.assertEqual(fresh.expired_keys(200, 10), [b"x"])

    def test_expiry_index_is_bounded_by_keys_with_a_ttl(self) -> None:
        """A follower never sweeps; rewriting the same keys with new TTLs, or
        dropping them, must not grow the index (it grew by one per write)."""
        self.storage.persist([Entry(1, i) for i in range(200, 6300)])
        for round_ in range(60):
            self.apply(
                *[
                    encode_op(Op.SET, 0, b"k%d" % i, b"v", 10_000 + round_, 0, False)
                    for i in range(100)
                ]
            )
        self.assertEqual(self.store.expiring_count(), 100)
        self.assertLessEqual(len(self.store._expiry), 2 * 100 + 1024)
        self.apply(encode_op(Op.DEL, 0, [b"k%d" % i for i in range(50)]))
        self.apply(encode_op(Op.PERSIST, 0, b"k60"))
        self.assertEqual(self.store.expiring_count(), 49)
        self.apply(encode_op(Op.FLUSHALL, 0))
        self.assertEqual(self.store.expiring_count(), 0)
        self.assertEqual(self.store.expired_keys(2**62, 1000), [])

    def test_sweep_keys_not_deleted_are_looked_at_again(self) -> None:
        self.apply(encode_op(Op.SET, 0, b"a", b"1", 100, 0, False))
        self.assertEqual(self.store.expired_keys(150, 10), [b"a"])
        self.store.retrack([b"a"])  # e.g. the sweep's proposal timed out
        self.assertEqual(self.store.expired_keys(150, 10), [b"a"])
        self.apply(encode_op(Op.EXPIRE_SWEEP, 150, [b"a"]))
        self.store.retrack([b"a"])
        self.assertEqual(self.store.expiring_count(), 0)
        self.assertEqual(self.store.expired_keys(150, 10), [])

    def test_flushall_clears_on_disk_and_keeps_later_writes(self) -> None:
        self.apply(encode_op(Op.MSET, 0, [b"a", b"1", b"b", b"2"]))
        results = self.apply(
            encode_op(Op.SET, 0, b"c", b"3", 0, 0, False),
            encode_op(Op.FLUSHALL, 0),
            encode_op(Op.SET, 0, b"d", b"4", 0, 0, False),
        )
        self.assertEqual(results[1], "OK")
        self.assertEqual(self.successResultOf(self.store.keys(None, 0)), [b"d"])
        for k in (b"a", b"b", b"c"):
            self.assertIsNone(self.store.get_record(k))
            self.assertIsNone(self.storage.get(k))
        self.assertEqual(self.store.get(b"d", 0), b"4")
        self.assertEqual(self.storage.applied_index(), self.index)


class _QueuedReads:
    """A read pool whose reads run only when the test says so (as if their
    thread got its turn late)."""

    def __init__(self) -> None:
        self.queued: list[tuple[defer.Deferred[Any], Callable[[], Any]]] = []

    def run(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.queued.append((d, lambda: fn(*args)))
        return d

    def run_all(self) -> None:
        queued, self.queued = self.queued, []
        for d, fn in queued:
            d.callback(fn())


class _ReadsInThreads:
    """The storage, except that its reads wait for :meth:`_QueuedReads.run_all`
    (the writes stay synchronous)."""

    def __init__(self, storage: LevelDBStorage, reads: _QueuedReads) -> None:
        self._storage = storage
        self.reads = reads

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


class ClearRaceTests(_Applying):
    """A read's view must be the applied state of one instant, even when a
    background clear (FLUSHALL, a released slot range) ends while it runs."""

    def setUp(self) -> None:
        self.storage = LevelDBStorage.in_memory(ConfState((0,)))
        self.storage.persist([Entry(1, i) for i in range(1, 50)])
        # The clear runs on disk only when the test releases it.
        self.clears: list[tuple[defer.Deferred[int], Any]] = []
        real_clear = self.storage.clear_data

        def held_clear(lo: int | None = None, hi: int | None = None) -> defer.Deferred[int]:
            d: defer.Deferred[int] = defer.Deferred()
            self.clears.append((d, lambda: real_clear(lo, hi)))
            return d

        self.storage.clear_data = held_clear  # type: ignore[method-assign]
        self.reads = _QueuedReads()
        self.store = KVStore(_ReadsInThreads(self.storage, self.reads))  # type: ignore[arg-type]
        self.app = KVApplication(self.store)

    def finish_clears(self) -> None:
        clears, self.clears = self.clears, []
        for d, run in clears:
            run().chainDeferred(d)

    def test_count_started_during_flushall_never_sees_old_keys(self) -> None:
        keys = [b"k%d" % i for i in range(100)]
        self.apply(encode_op(Op.MSET, 0, [x for k in keys for x in (k, b"v")]))
        self.apply(encode_op(Op.FLUSHALL, 0), encode_op(Op.SET, 0, b"new", b"1", 0, 0, False))
        counting = self.store.count(0)
        listing = self.store.keys(None, 0)
        scanning = self.store.scan(0, 1000, None, 0)
        # The clear finishes on disk before the reads get their turn.
        self.finish_clears()
        self.reads.run_all()
        self.assertEqual(self.successResultOf(counting), 1)
        self.assertEqual(self.successResultOf(listing), [b"new"])
        self.assertEqual(self.successResultOf(scanning), (0, [b"new"]))

    def test_range_release_during_a_scan(self) -> None:
        keys = [b"k%d" % i for i in range(200)]
        self.apply(encode_op(Op.MSET, 0, [x for k in keys for x in (k, b"v")]))
        self.store.clear_slots(0, 8191)  # what a RELEASE of slots 0-8191 does
        counting = self.store.count(0)
        self.finish_clears()
        self.reads.run_all()
        expected = len([k for k in keys if key_hash_slot(k) > 8191])
        self.assertEqual(self.successResultOf(counting), expected)
