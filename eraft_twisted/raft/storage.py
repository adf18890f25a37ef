"""The log storage interface the Raft core reads from, and an in-memory one.

The core only *reads* through :class:`Storage`; the driver writes to it
while handling a :class:`~eraft_twisted.raft.types.Ready` (append entries,
set the hard state, apply a snapshot) and compacts it after snapshots.
"""

from __future__ import annotations

from typing import Protocol

from .types import (
    CompactedError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
    UnavailableError,
)


class Storage(Protocol):
    """Read access to persisted Raft state."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and membership persisted last."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in ``[lo, hi)``; at least one if any, at most ``max_bytes``."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index`` (also valid for the snapshot index)."""
        ...

    def first_index(self) -> int:
        """Index of the first entry still in the log (snapshot index + 1)."""
        ...

    def last_index(self) -> int:
        """Index of the last entry persisted."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot."""
        ...

    def conf_entries(self, lo: int, hi: int) -> list[Entry]:
        """The membership-change entries in ``[lo, hi)``, in order."""
        ...


def limit_size(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """The longest prefix of ``entries`` within ``max_bytes`` (at least one)."""
    if max_bytes is None or not entries:
        return entries
    total = 0
    for i, e in enumerate(entries):
        total += e.size()
        if total > max_bytes and i > 0:
            return entries[:i]
    return entries


class MemoryStorage:
    """A :class:`Storage` kept in memory; what the simulation and tests use.

    ``ents[0]`` is a dummy entry holding the snapshot's index and term, as
    in etcd, so index arithmetic stays simple.
    """

    def __init__(self, conf: ConfState | None = None) -> None:
        self.hard_state = HardState()
        self.conf = conf or ConfState()
        self.snap = Snapshot(SnapshotMeta(0, 0, self.conf))
        self.ents: list[Entry] = [Entry(0, 0)]

    # -- Storage --------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self.conf

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        offset = self.ents[0].index
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        return limit_size(self.ents[lo - offset : hi - offset], max_bytes)

    def term(self, index: int) -> int:
        offset = self.ents[0].index
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self.ents):
            raise UnavailableError(index)
        return self.ents[index - offset].term

    def first_index(self) -> int:
        return self.ents[0].index + 1

    def last_index(self) -> int:
        return self.ents[0].index + len(self.ents) - 1

    def snapshot(self) -> Snapshot:
        return self.snap

    def conf_entries(self, lo: int, hi: int) -> list[Entry]:
        offset = self.ents[0].index
        return [
            e
            for e in self.ents[max(1, lo - offset) : max(1, hi - offset)]
            if e.type == EntryType.CONF_CHANGE
        ]

    # -- writes (driver side) -------------------------------------------
    def set_hard_state(self, hs: HardState) -> None:
        """Persist the hard state."""
        self.hard_state = hs

    def set_conf_state(self, conf: ConfState) -> None:
        """Persist the membership (done when a conf change is applied)."""
        self.conf = conf

    def append(self, entries: list[Entry]) -> None:
        """Persist entries, truncating any conflicting suffix."""
        if not entries:
            return
        first = self.first_index()
        last = entries[-1].index
        if last < first:
            return
        if first > entries[0].index:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self.ents[0].index
        if len(self.ents) > offset:
            self.ents = self.ents[:offset] + list(entries)
        elif len(self.ents) == offset:
            self.ents.extend(entries)
        else:
            raise ValueError(
                f"missing log entry: last {self.last_index()}, appending at {entries[0].index}"
            )

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log with a snapshot received from the leader."""
        if snap.meta.index <= self.snap.meta.index:
            return
        self.snap = snap
        self.conf = snap.meta.conf
        self.ents = [Entry(snap.meta.term, snap.meta.index)]

    def create_snapshot(self, index: int, conf: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine at applied ``index``."""
        if index <= self.snap.meta.index:
            return self.snap
        if index > self.last_index():
            raise UnavailableError(index)
        self.snap = Snapshot(SnapshotMeta(index, self.term(index), conf), data)
        return self.snap

    def compact(self, index: int) -> None:
        """Drop entries up to and including ``index``."""
        offset = self.ents[0].index
        if index <= offset:
            return
        if index > self.last_index():
            raise UnavailableError(index)
        i = index - offset
        self.ents = [Entry(self.ents[i].term, index)] + self.ents[i + 1 :]
