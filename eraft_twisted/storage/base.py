"""What the parts of :class:`~.leveldb.LevelDBStorage` share: its state and its write path.

LevelDBStorage is this base plus :class:`~.install.SnapshotInstall` (taking
in a snapshot) and :class:`~.smreads.StateMachineReads` (reading the state
machine); its constructor sets every attribute declared here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from .db import DB
from .errors import StorageFailed
from .raftlog import EntryCache, LogShape
from .writer import Op, Writer

T = TypeVar("T")
U = TypeVar("U")


class StorageBase:
    """The shared state of LevelDBStorage, and how every write goes to the writer."""

    path: str
    install_chunk: int
    """Operations per batch when clearing or moving snapshot data."""
    _db: DB
    _writer: Writer
    _cache: EntryCache
    _mem: LogShape
    """The log as durably written: what reads see."""
    _pending: LogShape
    """The log with every submitted write: what validates and plans writes."""
    _applied: tuple[int, int]
    _p_applied: tuple[int, int]
    _overlay: dict[bytes, tuple[int, bytes | None]]
    _overlay_rows: dict[bytes, set[bytes]]
    """The collection rows among ``_overlay``'s keys, by their collection's
    row prefix (``layout.ROW_HEADER`` bytes), so a range read of one
    collection does not look at every pending change."""
    """State-machine writes submitted, not yet written: ``{key: (seq, value)}``."""
    _broken: Failure | None
    _closed: bool

    def _submit(self, ops: Sequence[Op], sync: bool) -> Deferred[None]:
        if self._broken is not None:
            return fail(StorageFailed(f"storage of {self.path} failed earlier"))
        d = self._writer.submit(ops, sync)
        d.addErrback(self._failed)
        return d

    def _job(self, fn: Callable[[DB], T]) -> Deferred[T]:
        if self._broken is not None:
            return fail(StorageFailed(f"storage of {self.path} failed earlier"))
        d = self._writer.run_job(fn)
        d.addErrback(self._failed)
        return d

    def _failed(self, failure: Failure) -> Failure:
        if self._broken is None and not self._closed:
            self._broken = failure
        return failure

    def _then(self, d: Deferred[U], update: Callable[[], T]) -> Deferred[T]:
        """Run ``update`` (a mirror update) when ``d`` succeeds, unless storage broke."""

        def done(_: U) -> T:
            if self._broken is not None:
                raise StorageFailed(f"storage of {self.path} failed earlier")
            return update()

        return d.addCallback(done)
