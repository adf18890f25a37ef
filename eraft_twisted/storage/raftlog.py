"""The raft log of :class:`~.leveldb.LevelDBStorage` without its payloads in RAM.

:class:`LogShape` is the log minus the entries' data: the raft state
(hard state, membership, last snapshot), the term of every index as one
``(first index, term)`` run per term change, a running total of entry
sizes (8 bytes per entry, so "bytes in this range" costs O(1)) and the
indexes of membership changes. It follows ``MemoryStorage``'s write
semantics exactly, so the storage can validate calls and compute stale
keys from it.

:class:`EntryCache` holds the most recent entries themselves, bounded
by bytes and by count; older ones are read back from LevelDB.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence

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

from .db import KeyReader
from .layout import decode_entry, log_key

ENTRY_OVERHEAD = 150
"""Bytes of Python objects around one cached entry's data (Entry, ints, list slot)."""

LOG_CACHE_BYTES = 64 << 20
LOG_CACHE_ENTRIES = 100_000


class LogShape:
    """Raft state and the shape of the log (terms, sizes), no entry data."""

    def __init__(self, hs: HardState, conf: ConfState, meta: SnapshotMeta, first: Entry) -> None:
        """Start from the dummy entry ``first`` (the compaction point)."""
        self.hard_state = hs
        self.conf = conf
        self.snap = Snapshot(meta)
        self._reset(first.index, first.term)

    def _reset(self, offset: int, term: int) -> None:
        self.offset = offset
        self._starts = [offset]
        self._terms = [term]
        # _sizes[k]: total size of every entry up to offset + k, ever
        # (only differences are used, so compaction just drops the front).
        self._sizes = array("q", [0])
        self.conf_indexes: list[int] = []

    def copy(self) -> LogShape:
        """An independent copy."""
        other = LogShape(self.hard_state, self.conf, self.snap.meta, Entry(0, 0))
        other.snap = self.snap
        other.offset = self.offset
        other._starts = list(self._starts)
        other._terms = list(self._terms)
        other._sizes = array("q", self._sizes)
        other.conf_indexes = list(self.conf_indexes)
        return other

    # -- reads ----------------------------------------------------------------------
    def first_index(self) -> int:
        """Index of the first entry still in the log."""
        return self.offset + 1

    def last_index(self) -> int:
        """Index of the last entry."""
        return self.offset + len(self._sizes) - 1

    def term(self, index: int) -> int:
        """Term at ``index`` (the compaction point included), as MemoryStorage."""
        if index < self.offset:
            raise CompactedError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        return self._terms[bisect_right(self._starts, index) - 1]

    def check_range(self, lo: int, hi: int) -> None:
        """Raise as ``MemoryStorage.entries`` would for ``[lo, hi)``."""
        if lo <= self.offset:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)

    def log_bytes(self, lo: int, hi: int) -> int:
        """Total ``Entry.size()`` of the entries in ``[lo, hi)`` still in the log."""
        lo = max(lo, self.first_index())
        hi = min(hi, self.last_index() + 1)
        if lo >= hi:
            return 0
        return self._sizes[hi - 1 - self.offset] - self._sizes[lo - 1 - self.offset]

    def conf_indexes_in(self, lo: int, hi: int) -> list[int]:
        """Indexes of the membership-change entries in ``[lo, hi)``."""
        c = self.conf_indexes
        return c[bisect_left(c, lo) : bisect_left(c, hi)]

    # -- writes (MemoryStorage's semantics) ------------------------------------------
    def set_hard_state(self, hs: HardState) -> None:
        """Record the hard state."""
        self.hard_state = hs

    def set_conf_state(self, conf: ConfState) -> None:
        """Record the membership at the applied index."""
        self.conf = conf

    def append(self, entries: Sequence[Entry]) -> list[Entry]:
        """Append, truncating a conflicting suffix; returns the entries kept.

        Entries below the first index are ignored; a gap raises ValueError.
        """
        if not entries:
            return []
        first = self.first_index()
        if entries[-1].index < first:
            return []
        kept = list(entries[max(0, first - entries[0].index) :])
        start = kept[0].index
        if start > self.last_index() + 1:
            raise ValueError(f"missing log entry: last {self.last_index()}, appending at {start}")
        self._truncate(start)
        for e in kept:
            self.push(e)
        return kept

    def push(self, e: Entry) -> None:
        """Add ``e`` right after the last entry (no checks: recovery)."""
        if e.term != self._terms[-1]:
            self._starts.append(e.index)
            self._terms.append(e.term)
        self._sizes.append(self._sizes[-1] + e.size())
        if e.type == EntryType.CONF_CHANGE:
            self.conf_indexes.append(e.index)

    def _truncate(self, start: int) -> None:
        """Drop the entries at ``start`` (> offset) and after."""
        del self._sizes[start - self.offset :]
        while self._starts[-1] >= start:
            self._starts.pop()
            self._terms.pop()
        del self.conf_indexes[bisect_left(self.conf_indexes, start) :]

    def compact(self, index: int) -> None:
        """Drop entries up to ``index``, which becomes the dummy entry."""
        if index <= self.offset:
            return
        if index > self.last_index():
            raise UnavailableError(index)
        k = bisect_right(self._starts, index) - 1
        self._starts = [index] + self._starts[k + 1 :]
        self._terms = self._terms[k:]
        del self._sizes[: index - self.offset]
        del self.conf_indexes[: bisect_right(self.conf_indexes, index)]
        self.offset = index

    def create_snapshot(self, index: int, conf: ConfState) -> Snapshot:
        """Record a snapshot at ``index`` (ignored if not newer; past the log raises)."""
        if index <= self.snap.meta.index:
            return self.snap
        if index > self.last_index():
            raise UnavailableError(index)
        self.snap = Snapshot(SnapshotMeta(index, self.term(index), conf))
        return self.snap

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by a received snapshot (ignored if not newer)."""
        if snap.meta.index <= self.snap.meta.index:
            return
        self.snap = snap
        self.conf = snap.meta.conf
        self._reset(snap.meta.index, snap.meta.term)


_EVICTED = Entry(0, 0)


class EntryCache:
    """The most recent log entries, contiguous, bounded by bytes and count.

    An entry costs its data plus :data:`ENTRY_OVERHEAD`; the oldest are
    evicted first, so the cache is always a run of consecutive indexes
    (empty if a single entry is over the byte bound).
    """

    def __init__(self, max_bytes: int = LOG_CACHE_BYTES, max_entries: int = LOG_CACHE_ENTRIES):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.bytes = 0
        # A list with a moving head: O(1) indexing and amortised O(1)
        # eviction; an evicted slot is overwritten at once to free the entry.
        self._ents: list[Entry] = []
        self._head = 0

    def __len__(self) -> int:
        return len(self._ents) - self._head

    def first_index(self, default: int) -> int:
        """Index of the oldest cached entry, or ``default`` if empty."""
        return self._ents[self._head].index if len(self) else default

    @staticmethod
    def cost(e: Entry) -> int:
        """What ``e`` counts against the byte bound."""
        return len(e.data) + ENTRY_OVERHEAD

    def append(self, entries: Sequence[Entry]) -> None:
        """Add entries that the log just kept, dropping any suffix they replace."""
        if not entries:
            return
        start = entries[0].index
        if len(self):
            lo = self._ents[self._head].index
            if not lo <= start <= lo + len(self):
                self.clear()
            else:
                keep = self._head + start - lo
                for e in self._ents[keep:]:
                    self.bytes -= self.cost(e)
                del self._ents[keep:]
        for e in entries:
            self._ents.append(e)
            self.bytes += self.cost(e)
        self._evict(lambda e: self.bytes > self.max_bytes or len(self) > self.max_entries)

    def compact(self, index: int) -> None:
        """Forget entries up to and including ``index``."""
        self._evict(lambda e: e.index <= index)

    def clear(self) -> None:
        """Forget everything."""
        self._ents, self._head, self.bytes = [], 0, 0

    def _evict(self, drop: Callable[[Entry], bool]) -> None:
        ents = self._ents
        while self._head < len(ents) and drop(ents[self._head]):
            self.bytes -= self.cost(ents[self._head])
            ents[self._head] = _EVICTED
            self._head += 1
        if self._head > 64 and self._head * 2 > len(ents):
            del ents[: self._head]
            self._head = 0

    def iter_from(self, lo: int, hi: int) -> Iterator[Entry]:
        """Cached entries in ``[lo, hi)``; ``lo`` must not be below :meth:`first_index`."""
        if not len(self):
            return iter(())
        base = self._head - self._ents[self._head].index
        stop = min(hi + base, len(self._ents))
        return (self._ents[i] for i in range(lo + base, stop))


def read_entries(
    db: KeyReader, cache: EntryCache, lo: int, hi: int, max_bytes: int | None = None
) -> list[Entry]:
    """Entries ``[lo, hi)`` of a log whose bounds the caller checked: from
    LevelDB below the cache, then from the cache; at least one, stopping
    before ``max_bytes`` is exceeded. Reads no further than it returns."""
    out: list[Entry] = []
    total = 0
    for e in _iter_entries(db, cache, lo, hi):
        total += e.size()
        if max_bytes is not None and total > max_bytes and out:
            break
        out.append(e)
    return out


def _iter_entries(db: KeyReader, cache: EntryCache, lo: int, hi: int) -> Iterator[Entry]:
    cached = cache.first_index(hi)
    for i in range(lo, min(hi, cached)):
        value = db.get(log_key(i))
        if value is None:
            # A compaction submitted after the caller's view of the log was
            # updated has already run in the writer thread.
            if i == lo:
                raise CompactedError(lo)
            return
        yield decode_entry(i, bytes(value))
    if hi > cached:
        yield from cache.iter_from(max(lo, cached), hi)
