"""The Raft log: persisted entries (via Storage) plus the unstable tail."""

from __future__ import annotations

from .storage import Storage, limit_size
from .types import CompactedError, Entry, EntryType, Snapshot, UnavailableError


class Unstable:
    """Entries and a snapshot not yet persisted by the driver."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.entries: list[Entry] = []
        self.snapshot: Snapshot | None = None

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.meta.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.meta.index == i:
                return self.snapshot.meta.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        term = self.maybe_term(i)
        if term is None or i < self.offset:
            return
        if term == t:
            self.entries = self.entries[i + 1 - self.offset :]
            self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == i:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        self.offset = snap.meta.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            self.offset = after
            self.entries = list(ents)
        else:
            self.entries = self.entries[: after - self.offset] + list(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    """The whole log as the core sees it, with commit and apply cursors."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1

    def __repr__(self) -> str:
        return (
            f"RaftLog(committed={self.committed}, applied={self.applied}, "
            f"unstable.offset={self.unstable.offset}, unstable={len(self.unstable.entries)})"
        )

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def last_term(self) -> int:
        return self.term(self.last_index())

    def term(self, i: int) -> int:
        """The term at ``i``; 0 when ``i`` is outside the known log."""
        dummy = self.first_index() - 1
        if i < dummy or i > self.last_index():
            return 0
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        try:
            return self.storage.term(i)
        except (CompactedError, UnavailableError):
            return 0

    def match_term(self, i: int, t: int) -> bool:
        dummy = self.first_index() - 1
        if i < dummy or i > self.last_index():
            return False
        return self.term(i) == t

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Whether a candidate's log is at least as up to date as ours (§5.4.1)."""
        lt = self.last_term()
        return term > lt or (term == lt and last_index >= self.last_index())

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= ``index`` whose term is <= ``term``."""
        if index > self.last_index():
            return index
        while index > 0:
            t = self.term(index)
            if t <= term or index < self.first_index():
                break
            index -= 1
        return index

    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]
    ) -> tuple[int, list[Entry]] | None:
        """Append entries after (index, log_term) if it matches.

        Returns the last index the message vouches for and the entries that
        were actually written (those from the first conflict on), or None.
        """
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        written: list[Entry] = []
        if ci:
            if ci <= self.committed:
                raise AssertionError(f"entry {ci} conflicts with committed {self.committed}")
            written = list(ents[ci - index - 1 :])
            self.append(written)
        self.commit_to(min(committed, last_new))
        return last_new, written

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        if ents[0].index - 1 < self.committed:
            raise AssertionError(f"append at {ents[0].index} below committed {self.committed}")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def next_committed_entries(self, max_bytes: int | None = None) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1, max_bytes)
        return []

    def has_next_committed_entries(self) -> bool:
        return self.committed + 1 > max(self.applied + 1, self.first_index())

    def commit_to(self, to: int) -> None:
        if to > self.committed:
            if to > self.last_index():
                raise AssertionError(f"commit {to} beyond last index {self.last_index()}")
            self.committed = to

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        if i > self.committed or i < self.applied:
            raise AssertionError(f"applied {i} outside [{self.applied}, {self.committed}]")
        self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        self.unstable.stable_to(i, t)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)

    def maybe_commit(self, max_index: int, term: int) -> bool:
        if max_index > self.committed and self.term(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def restore(self, snap: Snapshot) -> None:
        self.committed = snap.meta.index
        self.unstable.restore(snap)

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def entries(self, i: int, max_bytes: int | None = None) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_bytes)

    def all_entries(self) -> list[Entry]:
        return self.entries(self.first_index())

    def conf_entries(self) -> list[Entry]:
        """Every membership-change entry in the log, in order, without
        reading the others (storage may not hold the log in memory)."""
        ents = self.storage.conf_entries(self.first_index(), self.unstable.offset)
        ents.extend(e for e in self.unstable.entries if e.type == EntryType.CONF_CHANGE)
        return ents

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi); raises CompactedError below the first index."""
        if lo < self.first_index():
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        if lo == hi:
            return []
        ents: list[Entry] = []
        uoff = self.unstable.offset
        if lo < uoff:
            stored = self.storage.entries(lo, min(hi, uoff), max_bytes)
            if len(stored) < min(hi, uoff) - lo:
                return stored
            ents = stored
        if hi > uoff:
            ents = ents + self.unstable.slice(max(lo, uoff), hi)
        return limit_size(ents, max_bytes)
