"""Reading the state machine's data: point reads, scans, LevelDB snapshots.

Point reads see every applied write at once (submitted writes are kept in
an overlay until the writer has written them); scans and snapshots see
what is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from eraft_twisted.raft.types import SnapshotMeta

from .base import StorageBase
from .db import DBSnapshot, KeyReader, RangeReader, merge_changes, require
from .layout import (
    APPLIED_KEY,
    CONF_STATE_KEY,
    ROW_HEADER,
    ROWS_PREFIX,
    SLOT_AREAS,
    SM_PREFIX,
    area_range,
    data_key,
    data_range,
    decode_applied,
    decode_conf_state,
    prefix_stop,
    user_key,
)


class StateMachineReads(StorageBase):
    """The part of LevelDBStorage that reads the state machine."""

    def get(self, key: bytes, snapshot: KeyReader | None = None) -> bytes | None:
        """The value of user key ``key``, or None.

        Without ``snapshot``, includes every :meth:`apply_ops` already
        called, even if not yet written. A LevelDB point read on the
        calling thread (usually served from cache).
        """
        return self.get_raw(data_key(key), snapshot)

    def get_raw(self, db_key: bytes, snapshot: KeyReader | None = None) -> bytes | None:
        """Like :meth:`get` for any DB key (e.g. ``layout.sm_meta_key``)."""
        if snapshot is not None:
            value = snapshot.get(db_key)
        else:
            hit = self._overlay.get(db_key)
            if hit is not None:
                return hit[1]
            value = self._db.get(db_key)
        return None if value is None else bytes(value)

    def scan(
        self,
        slot_lo: int,
        slot_hi: int,
        start_after: bytes | None = None,
        count: int | None = None,
        snapshot: RangeReader | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(user key, value)`` pairs of slots ``slot_lo..slot_hi`` (inclusive).

        Ordered by (slot, key); resumes after user key ``start_after``;
        at most ``count`` pairs. Reads written data only (a LevelDB
        iterator: a consistent view as of the first item), from
        ``snapshot`` if given.
        """
        start, stop = data_range(slot_lo, slot_hi)
        include_start = True
        if start_after is not None:
            after = data_key(start_after)
            if after >= start:
                start, include_start = after, False
        if start >= stop:
            return iter(())
        source = snapshot if snapshot is not None else self._db
        pairs = source.iterator(start=start, stop=stop, include_start=include_start)
        out = ((user_key(k), bytes(v)) for k, v in pairs)
        return out if count is None else islice(out, count)

    def scan_areas(
        self,
        slot_lo: int,
        slot_hi: int,
        start_after: bytes | None = None,
        count: int | None = None,
        snapshot: RangeReader | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(db key, value)`` of every key of slots ``slot_lo..slot_hi`` in
        every slot area (``layout.SLOT_AREAS``), in key order, after DB key
        ``start_after``; at most ``count``. Written data only, like :meth:`scan`."""
        source = snapshot if snapshot is not None else self._db

        def pairs() -> Iterator[tuple[bytes, bytes]]:
            for area in SLOT_AREAS:
                start, stop = area_range(area, slot_lo, slot_hi)
                include_start = True
                if start_after is not None:
                    if start_after >= stop:
                        continue
                    if start_after >= start:
                        start, include_start = start_after, False
                for k, v in source.iterator(start=start, stop=stop, include_start=include_start):
                    yield bytes(k), bytes(v)

        return pairs() if count is None else islice(pairs(), count)

    def scan_raw(
        self, prefix: bytes, start_after: bytes | None = None, snapshot: RangeReader | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(db key, value)`` pairs under ``prefix``, after ``start_after`` if given."""
        source = snapshot if snapshot is not None else self._db
        if start_after is None:
            return iter(source.iterator(prefix=prefix))
        return iter(
            source.iterator(start=start_after, stop=prefix_stop(prefix), include_start=False)
        )

    def iterate(
        self, start: bytes, stop: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(db key, value)`` pairs in ``[start, stop)`` as of every
        :meth:`apply_ops` already called (written or not): a LevelDB iterator
        (its implicit snapshot) with the unwritten changes of that range,
        both as of this call. For ranges a request bounds."""
        overlay = self._overlay
        if start[:2] == ROWS_PREFIX and stop <= prefix_stop(start[:ROW_HEADER]):
            # One collection's rows: only its own pending changes.
            keys = self._overlay_rows.get(start[:ROW_HEADER], ())
            pending = {k: overlay[k][1] for k in keys if start <= k < stop}
        else:
            pending = {k: v for k, (_, v) in overlay.items() if start <= k < stop}
        base = self._written(start, stop, reverse)
        return merge_changes(base, pending, reverse) if pending else base

    def _written(self, start: bytes, stop: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        if not reverse:
            # A LevelDB iterator reads an implicit snapshot of its own.
            for k, v in self._db.iterator(start=start, stop=stop):
                yield bytes(k), bytes(v)
            return
        snap = self._db.snapshot()
        try:
            found = False
            for k, v in snap.iterator(start=start, stop=stop, reverse=True):
                found = True
                yield bytes(k), bytes(v)
            if not found:
                # plyvel 1.5's reverse iterator misses a range whose only
                # key is ``start`` itself.
                last = snap.get(start)
                if last is not None:
                    yield start, bytes(last)
        finally:
            snap.close()

    def pending_overlay(self) -> dict[bytes, bytes | None]:
        """State-machine changes submitted by :meth:`apply_ops` but not yet written.

        ``{db key: value or None for a delete}``, a copy. Combined with a
        :meth:`db_snapshot` taken at the same moment (same reactor turn),
        it is the whole applied state.
        """
        return {key: value for key, (_, value) in self._overlay.items()}

    def db_snapshot(self) -> DBSnapshot:
        """A LevelDB snapshot: a frozen, consistent view of everything written.

        Cheap (no copy). Pass it to :meth:`get`/:meth:`scan`, or to
        :meth:`snapshot_meta_at`/:meth:`snapshot_items` to ship a raft
        snapshot; ``.close()`` it when done.
        """
        return self._db.snapshot()

    def snapshot_meta_at(self, snapshot: KeyReader) -> SnapshotMeta:
        """The raft position of the state machine in a :meth:`db_snapshot`.

        Read from the snapshot itself (applied index, its term, membership),
        so it matches :meth:`snapshot_items` of the same snapshot exactly.
        """
        index, term = decode_applied(require(snapshot, APPLIED_KEY, self.path))
        return SnapshotMeta(
            index, term, decode_conf_state(require(snapshot, CONF_STATE_KEY, self.path))
        )

    def outgoing_snapshot(self) -> tuple[SnapshotMeta, DBSnapshot]:
        """A :meth:`db_snapshot` and its exact raft position, for shipping to a follower.

        Ship *this* meta with the items, not ``snapshot().meta``: the live
        state machine is usually ahead of the last recorded snapshot, and a
        follower installing newer data under an older index would apply
        the entries in between twice.
        """
        snap = self._db.snapshot()
        return self.snapshot_meta_at(snap), snap

    def snapshot_items(self, snapshot: RangeReader) -> Iterator[tuple[bytes, bytes]]:
        """Every state-machine ``(db key, value)`` in a :meth:`db_snapshot`."""
        return iter(snapshot.iterator(prefix=SM_PREFIX))
