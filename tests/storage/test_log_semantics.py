"""The raft log semantics, checked identically on MemoryStorage and LevelDBStorage.

Each case runs against MemoryStorage (the reference), LevelDBStorage over
MemoryDB, and LevelDBStorage over a real LevelDB; the LevelDB one also
closes and reopens the database and checks the recovered state.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.raft.storage import MemoryStorage
from eraft_twisted.raft.types import (
    CompactedError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
    UnavailableError,
)
from eraft_twisted.storage.leveldb import LevelDBStorage

CONF = ConfState((1, 2, 3), ())


def E(index: int, term: int, data: bytes = b"") -> Entry:
    return Entry(term, index, EntryType.NORMAL, data)


class LogSemanticsMixin:
    """Cases written against a small adapter; subclasses pick the storage."""

    bumps_commit_on_snapshot = False

    # adapter, overridden by subclasses
    def make(self, conf: ConfState | None = None) -> Any:
        raise NotImplementedError

    def reloaded(self, s: Any) -> Any:
        """The same storage after a restart (itself for MemoryStorage)."""
        return s

    def append(self, s: Any, ents: list[Entry]) -> None:
        raise NotImplementedError

    def set_hard_state(self, s: Any, hs: HardState) -> None:
        raise NotImplementedError

    def compact(self, s: Any, index: int) -> None:
        raise NotImplementedError

    def create_snapshot(self, s: Any, index: int, conf: ConfState) -> Snapshot:
        raise NotImplementedError

    def apply_snapshot(self, s: Any, meta: SnapshotMeta) -> None:
        raise NotImplementedError

    # helpers
    def log_at(self, snap_index: int, snap_term: int, ents: list[Entry]) -> Any:
        """A storage whose log is [dummy(snap_index, snap_term)] + ents."""
        s = self.make(CONF)
        if snap_index:
            self.apply_snapshot(s, SnapshotMeta(snap_index, snap_term, CONF))
        self.append(s, ents)
        return s

    def all_entries(self, s: Any) -> list[Entry]:
        return list(s.entries(s.first_index(), s.last_index() + 1))

    def check_both(self, s: Any, check: Any) -> Any:
        """Run ``check`` on ``s`` and on ``s`` reopened; returns the reopened one."""
        check(s)
        s = self.reloaded(s)
        check(s)
        return s

    # -- cases ------------------------------------------------------------------------
    def test_new_storage(self) -> None:
        s = self.make(CONF)

        def check(s: Any) -> None:
            t: Any = self
            t.assertEqual(s.initial_state(), (HardState(), CONF))
            t.assertEqual(s.first_index(), 1)
            t.assertEqual(s.last_index(), 0)
            t.assertEqual(s.term(0), 0)
            t.assertEqual(s.snapshot().meta, SnapshotMeta(0, 0, CONF))
            t.assertEqual(s.entries(1, 1), [])
            t.assertRaises(CompactedError, s.entries, 0, 1)
            t.assertRaises(UnavailableError, s.entries, 1, 2)
            t.assertRaises(UnavailableError, s.term, 1)

        self.check_both(s, check)

    def test_term(self) -> None:
        s = self.log_at(3, 3, [E(4, 4), E(5, 5)])

        def check(s: Any) -> None:
            t: Any = self
            t.assertRaises(CompactedError, s.term, 2)
            t.assertEqual(s.term(3), 3)
            t.assertEqual(s.term(4), 4)
            t.assertEqual(s.term(5), 5)
            t.assertRaises(UnavailableError, s.term, 6)

        self.check_both(s, check)

    def test_entries(self) -> None:
        ents = [E(4, 4), E(5, 5), E(6, 6)]
        s = self.log_at(3, 3, ents)
        size = ents[0].size()

        def check(s: Any) -> None:
            t: Any = self
            t.assertRaises(CompactedError, s.entries, 2, 6)
            t.assertRaises(CompactedError, s.entries, 3, 4)
            t.assertEqual(s.entries(4, 5), [E(4, 4)])
            t.assertEqual(s.entries(4, 7), ents)
            t.assertEqual(s.entries(4, 7, size * 3), ents)
            t.assertEqual(s.entries(4, 7, size * 2 + size // 2), ents[:2])
            t.assertEqual(s.entries(4, 7, size * 2), ents[:2])
            t.assertEqual(s.entries(4, 7, size * 2 - 1), ents[:1])
            t.assertEqual(s.entries(4, 7, 0), ents[:1])
            t.assertRaises(UnavailableError, s.entries, 4, 8)

        self.check_both(s, check)

    def test_first_last_index(self) -> None:
        s = self.log_at(3, 3, [E(4, 4), E(5, 5)])
        t: Any = self
        t.assertEqual((s.first_index(), s.last_index()), (4, 5))
        self.append(s, [E(6, 5)])
        t.assertEqual(s.last_index(), 6)
        self.compact(s, 4)
        t.assertEqual((s.first_index(), s.last_index()), (5, 6))
        s = self.reloaded(s)
        t.assertEqual((s.first_index(), s.last_index()), (5, 6))

    def test_compact(self) -> None:
        t: Any = self
        cases = [
            (2, 3, 3, 3),  # at or below the dummy: no effect
            (3, 3, 3, 3),
            (4, 4, 4, 2),
            (5, 5, 5, 1),
        ]
        for index, want_first_dummy, want_term, want_len in cases:
            s = self.log_at(3, 3, [E(4, 4), E(5, 5)])
            self.compact(s, index)

            def check(
                s: Any, dummy: int = want_first_dummy, term: int = want_term, n: int = want_len
            ) -> None:
                t.assertEqual(s.first_index() - 1, dummy)
                t.assertEqual(s.term(dummy), term)
                t.assertEqual(s.last_index() - s.first_index() + 2, n)

            self.check_both(s, check)
        s = self.log_at(3, 3, [E(4, 4), E(5, 5)])
        t.assertRaises(UnavailableError, self.compact, s, 6)
        t.assertEqual(self.all_entries(s), [E(4, 4), E(5, 5)])

    def test_compact_drops_data_of_dummy(self) -> None:
        s = self.log_at(0, 0, [E(1, 1, b"a"), E(2, 1, b"b"), E(3, 2, b"c")])
        self.compact(s, 2)

        def check(s: Any) -> None:
            t: Any = self
            t.assertEqual(s.term(2), 1)
            t.assertEqual(self.all_entries(s), [E(3, 2, b"c")])
            t.assertRaises(CompactedError, s.entries, 2, 3)

        self.check_both(s, check)

    def test_create_snapshot(self) -> None:
        t: Any = self
        conf = ConfState((1, 2), (3,))
        for index, want in [(4, SnapshotMeta(4, 4, conf)), (5, SnapshotMeta(5, 5, conf))]:
            s = self.log_at(3, 3, [E(4, 4), E(5, 5)])
            snap = self.create_snapshot(s, index, conf)
            t.assertEqual(snap.meta, want)

            def check(s: Any, want: SnapshotMeta = want) -> None:
                t.assertEqual(s.snapshot().meta, want)
                # creating a snapshot does not compact
                t.assertEqual(s.first_index(), 4)

            self.check_both(s, check)
        s = self.log_at(3, 3, [E(4, 4), E(5, 5)])
        t.assertRaises(UnavailableError, self.create_snapshot, s, 6, conf)
        old = s.snapshot()
        t.assertEqual(self.create_snapshot(s, 3, conf), old)
        t.assertEqual(self.create_snapshot(s, 2, conf), old)

    def test_snapshot_then_compact(self) -> None:
        s = self.log_at(0, 0, [E(i, 1) for i in range(1, 11)])
        self.create_snapshot(s, 7, CONF)
        self.compact(s, 7)

        def check(s: Any) -> None:
            t: Any = self
            t.assertEqual(s.snapshot().meta, SnapshotMeta(7, 1, CONF))
            t.assertEqual((s.first_index(), s.last_index()), (8, 10))
            t.assertEqual(s.term(7), 1)

        self.check_both(s, check)

    def test_append(self) -> None:
        t: Any = self
        base = [E(4, 4), E(5, 5)]
        cases = [
            ([E(3, 3), E(4, 4), E(5, 5)], [E(4, 4), E(5, 5)]),
            ([E(3, 3), E(4, 6), E(5, 6)], [E(4, 6), E(5, 6)]),
            ([E(3, 3), E(4, 4), E(5, 5), E(6, 5)], [E(4, 4), E(5, 5), E(6, 5)]),
            # entries before the first index are ignored, the rest truncates
            ([E(2, 3), E(3, 3), E(4, 5)], [E(4, 5)]),
            ([E(4, 5)], [E(4, 5)]),
            ([E(5, 6)], [E(4, 4), E(5, 6)]),
            ([E(6, 5)], [E(4, 4), E(5, 5), E(6, 5)]),
            # all compacted away: no effect
            ([E(1, 1), E(2, 2)], [E(4, 4), E(5, 5)]),
            ([], [E(4, 4), E(5, 5)]),
        ]
        for new, want in cases:
            s = self.log_at(3, 3, base)
            self.append(s, new)

            def check(s: Any, want: list[Entry] = want) -> None:
                t.assertEqual(self.all_entries(s), want)
                t.assertEqual(s.last_index(), want[-1].index)

            self.check_both(s, check)

    def test_append_truncates_long_suffix(self) -> None:
        s = self.log_at(0, 0, [E(i, 1, b"x%d" % i) for i in range(1, 21)])
        self.append(s, [E(5, 2, b"new")])

        def check(s: Any) -> None:
            t: Any = self
            t.assertEqual(s.last_index(), 5)
            t.assertEqual(s.entries(5, 6), [E(5, 2, b"new")])
            t.assertRaises(UnavailableError, s.term, 6)

        s = self.check_both(s, check)
        # growing again after a truncation must not resurrect old entries
        self.append(s, [E(6, 2, b"six")])
        s = self.reloaded(s)
        t: Any = self
        t.assertEqual(s.last_index(), 6)
        t.assertEqual(s.entries(6, 7), [E(6, 2, b"six")])

    def test_append_gap(self) -> None:
        s = self.log_at(3, 3, [E(4, 4), E(5, 5)])
        t: Any = self
        t.assertRaises(ValueError, self.append, s, [E(7, 5)])
        t.assertEqual(self.all_entries(s), [E(4, 4), E(5, 5)])

    def test_apply_snapshot(self) -> None:
        s = self.log_at(0, 0, [E(1, 1), E(2, 1), E(3, 2)])
        conf = ConfState((4, 5), (6,))
        self.apply_snapshot(s, SnapshotMeta(10, 3, conf))

        def check(s: Any) -> None:
            t: Any = self
            t.assertEqual(s.snapshot().meta, SnapshotMeta(10, 3, conf))
            t.assertEqual((s.first_index(), s.last_index()), (11, 10))
            t.assertEqual(s.term(10), 3)
            t.assertEqual(s.initial_state()[1], conf)
            t.assertRaises(CompactedError, s.term, 3)

        s = self.check_both(s, check)
        # an older (or equal) snapshot is ignored
        self.apply_snapshot(s, SnapshotMeta(5, 2, CONF))
        self.apply_snapshot(s, SnapshotMeta(10, 3, CONF))
        s = self.check_both(s, check)
        self.append(s, [E(11, 3, b"after")])
        s = self.reloaded(s)
        t: Any = self
        t.assertEqual(s.entries(11, 12), [E(11, 3, b"after")])

    def test_apply_snapshot_inside_log(self) -> None:
        """A snapshot at an index the log holds still replaces the whole log."""
        s = self.log_at(0, 0, [E(i, 1) for i in range(1, 8)])
        self.apply_snapshot(s, SnapshotMeta(4, 1, CONF))

        def check(s: Any) -> None:
            t: Any = self
            t.assertEqual((s.first_index(), s.last_index()), (5, 4))

        self.check_both(s, check)

    def test_hard_state(self) -> None:
        s = self.make(CONF)
        self.set_hard_state(s, HardState(5, 2, 0))
        self.append(s, [E(1, 5), E(2, 5)])
        self.set_hard_state(s, HardState(5, 2, 2))

        def check(s: Any) -> None:
            t: Any = self
            t.assertEqual(s.initial_state(), (HardState(5, 2, 2), CONF))

        self.check_both(s, check)

    def test_entry_types_and_data(self) -> None:
        ents = [
            Entry(1, 1, EntryType.NOOP, b""),
            Entry(1, 2, EntryType.NORMAL, b"\x00\xff" * 1000),
            Entry(2, 3, EntryType.CONF_CHANGE, b"\x92\x01\x02"),
        ]
        s = self.make(CONF)
        self.append(s, ents)

        def check(s: Any) -> None:
            t: Any = self
            got = s.entries(1, 4)
            t.assertEqual(got, ents)
            t.assertEqual([type(e.type) for e in got], [EntryType] * 3)

        self.check_both(s, check)

    def test_random_operations(self) -> None:
        """Random histories leave both storages in the same state."""
        for seed in range(4):
            rng = random.Random(seed)
            ref = MemoryStorage(CONF)
            s = self.make(CONF)
            term = 1
            for _ in range(150):
                op = rng.random()
                if op < 0.55:
                    lo = max(
                        ref.first_index() - 2, rng.randint(ref.first_index(), ref.last_index() + 1)
                    )
                    if rng.random() < 0.3:
                        term += 1
                    n = rng.randint(1, 6)
                    ents = [E(i, term, b"%d" % rng.randrange(1000)) for i in range(lo, lo + n)]
                    ref.append(ents)
                    self.append(s, ents)
                elif op < 0.65:
                    hs = HardState(term, rng.randrange(3), rng.randint(0, ref.last_index()))
                    ref.set_hard_state(hs)
                    self.set_hard_state(s, hs)
                elif op < 0.8 and ref.last_index() > ref.first_index():
                    i = rng.randint(ref.first_index(), ref.last_index())
                    ref.compact(i)
                    self.compact(s, i)
                elif op < 0.9:
                    i = rng.randint(ref.first_index() - 1, ref.last_index())
                    ref.create_snapshot(i, CONF, b"")
                    self.create_snapshot(s, i, CONF)
                else:
                    i = ref.last_index() + rng.randint(-2, 5)
                    meta = SnapshotMeta(i, term, CONF)
                    bump = self.bumps_commit_on_snapshot
                    if bump and i > ref.snap.meta.index and ref.hard_state.commit < i:
                        # LevelDBStorage's one extension: installing a snapshot
                        # raises the persisted commit index to it (crash safety).
                        ref.set_hard_state(replace(ref.hard_state, commit=i))
                    ref.apply_snapshot(Snapshot(meta))
                    self.apply_snapshot(s, meta)
                self.assertSame(ref, s)
            self.assertSame(ref, self.reloaded(s))

    def assertSame(self, ref: MemoryStorage, s: Any) -> None:
        t: Any = self
        t.assertEqual(s.first_index(), ref.first_index())
        t.assertEqual(s.last_index(), ref.last_index())
        t.assertEqual(s.term(ref.first_index() - 1), ref.term(ref.first_index() - 1))
        t.assertEqual(self.all_entries(s), self.all_entries(ref))
        t.assertEqual(s.snapshot().meta, ref.snapshot().meta)
        t.assertEqual(s.initial_state()[0], ref.initial_state()[0])


class MemoryStorageLogTests(LogSemanticsMixin, SynchronousTestCase):
    """The reference: MemoryStorage itself."""

    def make(self, conf: ConfState | None = None) -> Any:
        return MemoryStorage(conf)

    def append(self, s: Any, ents: list[Entry]) -> None:
        s.append(ents)

    def set_hard_state(self, s: Any, hs: HardState) -> None:
        s.set_hard_state(hs)

    def compact(self, s: Any, index: int) -> None:
        s.compact(index)

    def create_snapshot(self, s: Any, index: int, conf: ConfState) -> Snapshot:
        result: Snapshot = s.create_snapshot(index, conf, b"")
        return result

    def apply_snapshot(self, s: Any, meta: SnapshotMeta) -> None:
        s.apply_snapshot(Snapshot(meta))


class _LevelDBAdapter(LogSemanticsMixin):
    bumps_commit_on_snapshot = True

    def done(self, d: Deferred[Any]) -> Any:
        t: Any = self
        return t.successResultOf(d)

    def append(self, s: Any, ents: list[Entry]) -> None:
        self.done(s.persist(ents))

    def set_hard_state(self, s: Any, hs: HardState) -> None:
        self.done(s.persist((), hs))

    def compact(self, s: Any, index: int) -> None:
        self.done(s.compact(index))

    def create_snapshot(self, s: Any, index: int, conf: ConfState) -> Snapshot:
        result: Snapshot = self.done(s.create_snapshot(index, conf))
        return result

    def apply_snapshot(self, s: Any, meta: SnapshotMeta) -> None:
        self.done(s.apply_snapshot(meta, []))


class MemoryDBLogTests(_LevelDBAdapter, SynchronousTestCase):
    """LevelDBStorage over the in-memory DB."""

    def make(self, conf: ConfState | None = None) -> Any:
        return LevelDBStorage.in_memory(conf)

    def reloaded(self, s: Any) -> Any:
        return LevelDBStorage.in_memory(db=s._db)


class LevelDBLogTests(_LevelDBAdapter, SynchronousTestCase):
    """LevelDBStorage over real LevelDB files, reopened to check recovery."""

    def make(self, conf: ConfState | None = None) -> Any:
        path = self.mktemp()
        s = LevelDBStorage.open(path, synchronous=True, conf=conf)
        self.addCleanup(lambda: s.close())
        return s

    def reloaded(self, s: Any) -> Any:
        self.done(s.close())
        s2 = LevelDBStorage.open(s.path, synchronous=True)
        self.addCleanup(lambda: s2.close())
        return s2
