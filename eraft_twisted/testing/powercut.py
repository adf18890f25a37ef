"""A simulated node's disk that loses unsynced writes in a power cut.

:class:`PowerCutStorage` is the :class:`~eraft_twisted.raft.storage.MemoryStorage`
the simulation's Raft core reads (the OS page cache: every write shows at
once), plus a second copy holding only what reached the platter. Each write
is recorded; :meth:`PowerCutStorage.sync` replays the recorded writes onto
the durable copy, as an fsync (or LevelDB's synced write, which flushes its
whole sequential log) would. :meth:`PowerCutStorage.power_cut` throws the
page cache away: what is left is the durable copy plus, at most, a prefix of
the unsynced writes -- never a later write without an earlier one, which is
what the node's LevelDB guarantees (see ``storage/writer.py``).

The state machine of a node that keeps it on disk is one more write
(:meth:`PowerCutStorage.save_state_machine`), unsynced like the KV data of
the real node, ordered with the log writes like the real node's batches.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from ..raft.rawnode import RawNode
from ..raft.storage import MemoryStorage
from ..raft.types import ConfState, Entry, HardState, Ready, Role, Snapshot

ZERO = b"\0" * 8


class DiskState(MemoryStorage):
    """Raft's storage plus the (index, digest) of a state machine kept on disk."""

    def __init__(self, conf: ConfState | None = None) -> None:
        super().__init__(conf)
        self.state_machine: tuple[int, bytes] = (0, ZERO)

    def _set_state_machine(self, index: int, digest: bytes) -> None:
        self.state_machine = (index, digest)

    def copy_from(self, other: DiskState) -> None:
        """Become exactly ``other`` (entries and snapshots are immutable)."""
        self.hard_state = other.hard_state
        self.conf = other.conf
        self.snap = other.snap
        self.ents = list(other.ents)
        self.state_machine = other.state_machine


_T = TypeVar("_T")
_Write = Callable[[DiskState], object]
"""One recorded write, to be replayed onto a disk."""


class PowerCutStorage(DiskState):
    """What the node reads and writes; :attr:`durable` is what a power cut leaves."""

    def __init__(self, conf: ConfState | None = None) -> None:
        super().__init__(conf)
        self.durable = DiskState(conf)
        """The synced state (a new node's initial state is synced at creation)."""
        self.pending: list[_Write] = []
        """Writes since the last sync, in order."""
        self.syncs = 0
        self.lost_writes = 0

    def _write(self, write: Callable[[DiskState], _T]) -> _T:
        result = write(self)
        # Recorded only once it succeeded: a refused write changes nothing.
        self.pending.append(write)
        return result

    # -- writes (each is recorded, to be replayed onto the durable copy) -------
    def set_hard_state(self, hs: HardState) -> None:
        """Write the hard state (durable once synced)."""
        self._write(lambda d: MemoryStorage.set_hard_state(d, hs))

    def set_conf_state(self, conf: ConfState) -> None:
        """Write the membership (durable once synced)."""
        self._write(lambda d: MemoryStorage.set_conf_state(d, conf))

    def append(self, entries: list[Entry]) -> None:
        """Append entries, truncating a conflicting suffix (durable once synced)."""
        batch = list(entries)
        self._write(lambda d: MemoryStorage.append(d, batch))

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the log with a received snapshot (durable once synced)."""
        self._write(lambda d: MemoryStorage.apply_snapshot(d, snap))

    def create_snapshot(self, index: int, conf: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine (durable once synced)."""
        return self._write(lambda d: MemoryStorage.create_snapshot(d, index, conf, data))

    def compact(self, index: int) -> None:
        """Drop the log up to ``index`` (durable once synced)."""
        self._write(lambda d: MemoryStorage.compact(d, index))

    def save_state_machine(self, index: int, digest: bytes) -> None:
        """Write the state machine applied up to ``index`` (durable once synced)."""
        self._write(lambda d: d._set_state_machine(index, digest))

    # -- durability -----------------------------------------------------------
    def sync(self) -> None:
        """fsync: every write so far becomes durable."""
        if self.pending:
            durable = self.durable
            for write in self.pending:
                write(durable)
            self.pending.clear()
            self.syncs += 1

    def power_cut(self, keep: int = 0) -> int:
        """Lose the page cache: keep only the synced writes and the first
        ``keep`` unsynced ones. Returns how many writes were lost."""
        keep = max(0, min(keep, len(self.pending)))
        durable = self.durable
        for write in self.pending[:keep]:
            write(durable)
        lost = len(self.pending) - keep
        self.pending.clear()
        self.lost_writes += lost
        self.copy_from(durable)
        return lost


def cut_power(disk: PowerCutStorage, rng: random.Random) -> int:
    """A power cut as the simulation draws it: usually every unsynced write
    is lost, sometimes the disk had written back a random prefix of them."""
    n = len(disk.pending)
    keep = 0 if rng.random() < 0.75 else rng.randint(0, n)
    return disk.power_cut(keep)


def sends_first(raw: RawNode, rd: Ready, synced: HardState) -> bool:
    """Whether a leader sends ``rd``'s messages before its writes are synced
    (§10.2.1), by node/driver.py's rule: not a term or vote not yet synced,
    nor a commit covering the Ready's own entries (a lone voter commits at
    once): a power cut could take those back after a learner acted on them."""
    if raw.role != Role.LEADER:
        return False
    hs = rd.hard_state
    if hs is None:
        return True
    if (hs.term, hs.vote) != (synced.term, synced.vote):
        return False
    return not (rd.entries and hs.commit >= rd.entries[0].index)
