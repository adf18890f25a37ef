"""The applied KV data as the node sees it: LevelDB plus writes still queued.

Applied writes reach LevelDB through the storage writer thread, so for a
short while they exist only in memory. :class:`KVStore` keeps them in an
overlay until their batch lands, so every read reflects every applied
write, and scans combine a LevelDB snapshot with a copy of the overlay
taken at the same instant.

Which reads run on the reactor thread: a point read (GET and the other
one-key reads, and the read of a key's record that INCR, APPEND, SET ...
make when applied, which must run in log order anyway) is one LevelDB get
and runs inline: 2-3 us p50 / 5-13 us p99 for 100 B values, 6-7 us /
14-19 us for 1 KiB (``bench/storage_reads.py``: 200,000 keys, block cache
warm or cold), where a round trip through the read pool costs 35-55 us p50
(milliseconds at p99 on a busy machine). Anything whose cost grows with
the data (SCAN, KEYS, DBSIZE, the start-up expiry scan, migration and
snapshot chunks) runs in ``storage.reads`` on a LevelDB snapshot; what
stays inline is bounded by the request or a fixed limit (MGET's keys,
1,000 keys per expiry sweep: 2.5-7 ms, ``meta_items``: a handful of keys).
A get that misses the OS page cache waits for the disk (9 us p50, 2-9 ms
p99 measured right after evicting a 200 MB database): a working set larger
than memory slows the whole group, applies included.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..hashslot import SLOTS, key_hash_slot
from ..raft.types import ConfState
from ..storage import layout
from ..storage.db import merge_changes
from ..storage.leveldb import LevelDBStorage
from .records import KeyType, is_live, record_expire, record_type
from .results import Writes
from .rowends import RangeEnds
from .scanning import Glob
from .statemachine import live_value

T = TypeVar("T")
log = Logger()

class DataView(Protocol):
    """A frozen view of the written data: a LevelDB snapshot (or MemoryDB's)."""

    def iterator(self, *, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]: ...

    def close(self) -> None: ...


class _ClearedView:
    """A LevelDB snapshot minus the slot ranges a FLUSHALL or a migration was
    deleting in the writer thread when the snapshot was taken: those keys
    are gone already, whether or not the delete reached the snapshot."""

    def __init__(self, snap: DataView, cleared: Callable[[bytes], bool]) -> None:
        self._snap = snap
        self._cleared = cleared

    def iterator(self, *, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        for dbk, rec in self._snap.iterator(start=start, stop=stop):
            if not self._cleared(layout.user_key(dbk)):
                yield dbk, rec

    def close(self) -> None:
        self._snap.close()


class KVStore:
    """Read and write access to the state machine's key space."""

    def __init__(self, storage: LevelDBStorage, reactor: IReactorTime | None = None) -> None:
        # ``reactor`` is not used: reads that may block go to ``storage.reads``.
        self.storage = storage
        self._staged: dict[bytes, bytes | None] = {}
        self._staged_meta: dict[bytes, bytes | None] = {}
        self._staged_rows: dict[bytes, bytes | None] = {}
        """Collection rows and garbage markers by DB key (``layout.row_key``)."""
        self._ends = RangeEnds()
        """What range reads learnt about the ends of collections' rows."""
        self._deadlines: dict[bytes, int] = {}
        """Key -> deadline of every key with a TTL (the expiry index)."""
        self._expiry: list[tuple[int, bytes]] = []
        """A heap over ``_deadlines``, with stale entries dropped lazily."""
        self.key_listeners: dict[bytes, set[Callable[[bytes], object]]] = {}
        """Called with a key whenever an applied write changes its record
        (clients blocked in BLPOP & co. wait on these)."""
        self._clearing: list[tuple[int, int]] = []
        self._after_clear: dict[bytes, bytes | None] = {}

    def get_record(self, key: bytes) -> bytes | None:
        """The stored record for ``key`` as of the last applied entry."""
        if key in self._staged:
            return self._staged[key]
        if self._clearing and self._cleared(key):
            # Being deleted on disk: only what was written since counts.
            return self._after_clear.get(key)
        return self.storage.get(key)

    def get_row(self, db_key: bytes) -> bytes | None:
        """A collection row (or garbage marker) as of the last applied entry."""
        if db_key in self._staged_rows:
            return self._staged_rows[db_key]
        return self.storage.get_raw(db_key)

    def stage_row(self, db_key: bytes, value: bytes | None) -> None:
        """Write (None: delete) a row; visible to reads at once."""
        self._staged_rows[db_key] = value
        if value is not None:
            self._ends.written(db_key)

    def iterate_rows(
        self, start: bytes, stop: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(db key, value)`` rows in ``[start, stop)`` as of now (applied
        writes included). The caller bounds how far it reads."""
        if start[:2] == layout.ROWS_PREFIX:
            return self._collection_rows(start, stop, reverse)
        return self._rows(start, stop, reverse)

    def _rows(self, start: bytes, stop: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        staged = {k: v for k, v in self._staged_rows.items() if start <= k < stop}
        base = self.storage.iterate(start, stop, reverse)
        return merge_changes(base, staged, reverse) if staged else base

    def _collection_rows(
        self, start: bytes, stop: bytes, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        """A read of one collection's rows that starts from what an earlier
        read of the same range learnt about its end (:mod:`.rowends`):
        popping from one end (ZPOPMIN, ZPOPMAX, a drained queue) then reads
        rows by key instead of opening a range read and stepping over the
        deletion marker of every row removed before. Results are exactly a
        plain range read's."""
        return self._ends.read(start, stop, reverse, self._rows, self.get_row)

    def _cleared(self, key: bytes) -> bool:
        if not self._clearing:
            return False
        slot = key_hash_slot(key)
        return any(lo <= slot <= hi for lo, hi in self._clearing)

    def clear_all(self) -> None:
        """FLUSHALL: every key is gone now; the disk catches up in the
        writer thread (no scan on the reactor)."""
        self.clear_slots(0, SLOTS - 1)

    def clear_slots(self, lo: int, hi: int) -> None:
        """Every key of slots lo..hi is gone now (the disk catches up)."""
        self._staged = {k: v for k, v in self._staged.items() if not lo <= key_hash_slot(k) <= hi}
        self._staged_rows = {
            k: v for k, v in self._staged_rows.items() if not lo <= layout.slot_of(k) <= hi
        }
        self._ends.clear()
        self._after_clear = {
            k: v for k, v in self._after_clear.items() if not lo <= key_hash_slot(k) <= hi
        }
        self._deadlines = {
            k: exp for k, exp in self._deadlines.items() if not lo <= key_hash_slot(k) <= hi
        }
        self._rebuild_expiry()
        self._clearing.append((lo, hi))
        d = self.storage.clear_data(lo, hi)

        def done(result: T) -> T:
            self._clearing.remove((lo, hi))
            if not self._clearing:
                self._after_clear = {}
            return result

        d.addBoth(done)

    def get(self, key: bytes, now_ms: int) -> bytes | None:
        """The live string value of ``key`` at ``now_ms``; :class:`WrongType`
        if it holds another type."""
        return live_value(self.get_record(key), now_ms)

    def stage(self, writes: Writes) -> None:
        """Make applied changes visible at once (the expiry index too);
        :meth:`flush` persists them."""
        if not writes:
            return
        for k, v in writes:
            self._staged[k] = v
        self.track_expiry(writes)
        if self.key_listeners:
            for k, _ in writes:
                for listener in list(self.key_listeners.get(k, ())):
                    listener(k)

    def flush(
        self, applied_index: int, conf_state: ConfState | None = None
    ) -> defer.Deferred[None]:
        """Persist everything staged together with the applied index."""
        ops = [(layout.data_key(k), v) for k, v in self._staged.items()]
        if self._clearing:
            self._after_clear.update(self._staged)
        ops.extend(self._staged_rows.items())
        ops.extend(self._staged_meta.items())
        self._staged = {}
        self._staged_rows = {}
        self._staged_meta = {}
        return self.storage.apply_ops(ops, applied_index, conf_state)

    def stage_meta(self, name: bytes, value: bytes | None) -> None:
        """Stage a write of the state machine's own replicated state."""
        self._staged_meta[layout.sm_meta_key(name)] = value

    def meta_items(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        """``(name, value)`` of replicated state under ``prefix``, as written
        to disk. A prefix read on the reactor: the state machine keeps a
        handful of such keys (``log_time``, ``shards``, one address per node
        id that joined), never one per user key."""
        head = layout.sm_meta_key(b"")
        return [(k[len(head) :], v) for k, v in self.storage.scan_raw(layout.sm_meta_key(prefix))]

    def reset(self) -> None:
        """Drop cached state after the data was replaced by a snapshot."""
        self._staged = {}
        self._staged_rows = {}
        self._ends.clear()
        self._deadlines = {}
        self._expiry = []

    def pending_count(self) -> int:
        return len(self.storage.pending_overlay())

    def _view(self) -> tuple[DataView, dict[bytes, bytes | None]]:
        """A LevelDB snapshot and the not-yet-written applied changes, taken
        at the same instant so together they are the applied state."""
        snap: DataView = self.storage.db_snapshot()
        overlay = {
            layout.user_key(k): v
            for k, v in self.storage.pending_overlay().items()
            if k.startswith(layout.DATA_PREFIX)
        }
        if not self._clearing:
            return snap, overlay
        # The ranges being cleared as of now, frozen: the clear may finish
        # while the view is read, and the snapshot still has those keys.
        clearing = tuple(self._clearing)

        def cleared(key: bytes) -> bool:
            slot = key_hash_slot(key)
            return any(lo <= slot <= hi for lo, hi in clearing)

        overlay = {k: v for k, v in overlay.items() if not cleared(k)}
        overlay.update(self._after_clear)
        return _ClearedView(snap, cleared), overlay

    def scan(
        self,
        cursor: int,
        count: int,
        match: bytes | None,
        now_ms: int,
        served: Callable[[int], bool] | None = None,
        end: int = SLOTS,
        kind: KeyType | None = None,
    ) -> defer.Deferred[tuple[int, list[bytes]]]:
        """SCAN by hash slot: returns (next cursor, keys); cursor 0 = done.

        The cursor is the next slot to visit, so every key present for the
        whole iteration is returned exactly once. The scan stops before
        slot ``end`` (the next cursor is then ``end``).
        """
        snap, overlay = self._view()
        regex = Glob(match) if match and match != b"*" else None

        def work() -> tuple[int, list[bytes]]:
            keys: list[bytes] = []
            slot = cursor
            while slot < end:
                if served is None or served(slot):
                    keys.extend(
                        self._slot_keys(snap, overlay, slot, slot, now_ms, regex, None, kind)
                    )
                slot += 1
                if len(keys) >= count:
                    break
            return (0 if slot >= SLOTS else slot), keys

        return self._in_thread(work, snap)

    def keys(
        self, match: bytes | None, now_ms: int, served: Callable[[int], bool] | None = None
    ) -> defer.Deferred[list[bytes]]:
        """Every live key matching ``match`` (in served slots), in a thread."""
        snap, overlay = self._view()
        regex = Glob(match) if match and match != b"*" else None
        return self._in_thread(
            lambda: self._slot_keys(snap, overlay, 0, SLOTS - 1, now_ms, regex, served), snap
        )

    def count(
        self, now_ms: int, served: Callable[[int], bool] | None = None
    ) -> defer.Deferred[int]:
        """Number of live keys (in served slots), in a thread."""
        snap, overlay = self._view()
        return self._in_thread(
            lambda: len(self._slot_keys(snap, overlay, 0, SLOTS - 1, now_ms, None, served)),
            snap,
        )

    def count_types(self, now_ms: int) -> defer.Deferred[dict[KeyType, int]]:
        """Number of live keys of each type, in a thread (INFO keyspace)."""
        snap, overlay = self._view()

        def work() -> dict[KeyType, int]:
            counts = dict.fromkeys(KeyType, 0)
            start, stop = layout.data_range(0, SLOTS - 1)
            for dbk, rec in snap.iterator(start=start, stop=stop):
                if layout.user_key(dbk) not in overlay and is_live(rec, now_ms):
                    counts[record_type(rec)] += 1
            for staged in overlay.values():
                if staged is not None and is_live(staged, now_ms):
                    counts[record_type(staged)] += 1
            return counts

        return self._in_thread(work, snap)

    def track_expiry(self, writes: Writes) -> None:
        """Keep the expiry index in step with applied writes (every replica
        does, so a new leader can sweep at once). Its size is the number of
        keys with a TTL, however often they are rewritten."""
        deadlines = self._deadlines
        for k, rec in writes:
            exp = record_expire(rec) if rec is not None else 0
            if not exp:
                deadlines.pop(k, None)
            elif deadlines.get(k) != exp:
                deadlines[k] = exp
                heapq.heappush(self._expiry, (exp, k))
        if len(self._expiry) > 2 * len(deadlines) + 1024:
            self._rebuild_expiry()

    def _rebuild_expiry(self) -> None:
        self._expiry = [(exp, k) for k, exp in self._deadlines.items()]
        heapq.heapify(self._expiry)

    def expiring_count(self) -> int:
        """How many keys have a TTL."""
        return len(self._deadlines)

    def load_expiry(self) -> defer.Deferred[int]:
        """Fill the expiry index from disk once, at start-up, in a thread."""
        snap, overlay = self._view()

        def work() -> list[tuple[bytes, bytes]]:
            start, stop = layout.data_range(0, SLOTS - 1)
            found = []
            for dbk, rec in snap.iterator(start=start, stop=stop):
                if record_expire(rec):
                    found.append((layout.user_key(dbk), rec))
            return found

        def loaded(found: list[tuple[bytes, bytes]]) -> int:
            # Writes applied since the scan began are already in the index.
            self.track_expiry(
                [(k, rec) for k, rec in found if k not in overlay and k not in self._deadlines]
            )
            return len(found)

        return self._in_thread(work, snap).addCallback(loaded)

    def expired_keys(self, now_ms: int, limit: int) -> list[bytes]:
        """Up to ``limit`` keys whose deadline is at or before ``now_ms`` (for
        the leader's sweeper). They leave the heap, not the index:
        :meth:`retrack` puts back those the sweep did not delete."""
        found: list[bytes] = []
        heap = self._expiry
        while heap and heap[0][0] <= now_ms and len(found) < limit:
            exp, k = heapq.heappop(heap)
            if self._deadlines.get(k) != exp:
                continue
            rec = self.get_record(k)
            if rec is not None and record_expire(rec) == exp:
                found.append(k)
            else:  # gone since the index learnt it (a start-up scan race)
                del self._deadlines[k]
        return found

    def retrack(self, keys: list[bytes]) -> None:
        """Keys handed out by :meth:`expired_keys` that still have a deadline
        go back into the heap."""
        for k in keys:
            exp = self._deadlines.get(k)
            if exp is not None:
                heapq.heappush(self._expiry, (exp, k))

    @staticmethod
    def _slot_keys(
        snap: DataView,
        overlay: dict[bytes, bytes | None],
        lo: int,
        hi: int,
        now_ms: int | None,
        regex: Glob | None,
        served: Callable[[int], bool] | None = None,
        kind: KeyType | None = None,
    ) -> list[bytes]:
        start, stop = layout.data_range(lo, hi)
        result: list[bytes] = []
        for dbk, rec in snap.iterator(start=start, stop=stop):
            k = layout.user_key(dbk)
            if k in overlay:
                continue
            if served is not None and not served(layout.slot_of(dbk)):
                continue
            if now_ms is not None and not is_live(rec, now_ms):
                continue
            if kind is not None and record_type(rec) != kind:
                continue
            if regex is None or regex.match(k):
                result.append(k)
        for k, staged in overlay.items():
            slot = key_hash_slot(k)
            if staged is None or not lo <= slot <= hi or (served is not None and not served(slot)):
                continue
            if now_ms is not None and not is_live(staged, now_ms):
                continue
            if kind is not None and record_type(staged) != kind:
                continue
            if regex is None or regex.match(k):
                result.append(k)
        return result

    def _in_thread(self, fn: Callable[[], T], snap: DataView) -> defer.Deferred[T]:
        def run() -> T:
            try:
                return fn()
            finally:
                snap.close()

        return self.storage.reads.run(run)
