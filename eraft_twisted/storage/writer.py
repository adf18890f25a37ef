"""The single thread that writes to LevelDB, with group commit.

Every write of a node goes through one :class:`Writer`. Submissions are
queued; the writer thread takes everything that queued up while its
previous write (and fsync) ran and commits it as **one** LevelDB write
batch, synced if any member asked for a sync. So under load one fsync
covers many submissions, and the reactor thread never blocks on disk.

Guarantees:

- operations are applied in submission order (within and across batches),
  so a later submission wins over an earlier one on the same key;
- the Deferreds fire on the reactor thread, in submission order;
- LevelDB's write-ahead log is sequential, so after a crash the database
  holds a prefix of the submissions: a synced submission being durable
  implies every earlier one is too.

``Writer(db, synchronous=True)`` writes inline and returns already-fired
Deferreds (no thread, no reactor) for deterministic unit tests.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger

from .db import DB

Op = tuple[bytes, bytes | None]
"""``(key, value)`` to put, or ``(key, None)`` to delete."""

FsyncPolicy = Literal["always", "never"]

T = TypeVar("T")

_log = Logger()


class WriterStopped(Exception):
    """The writer was stopped; nothing more can be written."""


@dataclass(slots=True)
class WriterStats:
    """Counters, updated on the reactor thread as writes complete."""

    submissions: int = 0
    batches: int = 0
    synced_batches: int = 0
    ops: int = 0
    jobs: int = 0
    largest_group: int = 0
    slow_writes: int = 0
    write_seconds: float = 0.0


class _Write:
    __slots__ = ("ops", "sync", "deferred")

    def __init__(self, ops: Sequence[Op], sync: bool, deferred: Deferred[None] | None) -> None:
        self.ops = ops
        self.sync = sync
        self.deferred = deferred


class _Job(Generic[T]):
    __slots__ = ("fn", "deferred")

    def __init__(self, fn: Callable[[DB], T], deferred: Deferred[T]) -> None:
        self.fn = fn
        self.deferred = deferred


_STOP = object()


class Writer:
    """Serialises all writes to ``db`` on one thread, grouping them into batches.

    :param db: a ``plyvel.DB`` (or :class:`~.memorydb.MemoryDB`).
    :param reactor: where Deferreds fire (``callFromThread``); required
        unless ``synchronous``.
    :param synchronous: write inline on the caller's thread; for tests.
    :param fsync: ``"always"`` syncs every batch containing a submission
        that asked for ``sync``; ``"never"`` never syncs -- UNSAFE: a
        machine crash or power loss can then lose acknowledged writes
        (a process crash cannot). For benchmarks and throwaway clusters.
    :param max_group_ops: stop adding submissions to a batch past this
        many operations (bounds the memory of one batch).
    :param slow_write_seconds: log a warning when one batch write takes
        longer (usually a slow fsync).
    """

    def __init__(
        self,
        db: DB,
        reactor: IReactorFromThreads | None = None,
        *,
        synchronous: bool = False,
        fsync: FsyncPolicy = "always",
        max_group_ops: int = 65536,
        slow_write_seconds: float = 0.5,
        name: str = "eraft-storage-writer",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fsync not in ("always", "never"):
            raise ValueError(f"fsync must be 'always' or 'never', not {fsync!r}")
        if reactor is None and not synchronous:
            raise TypeError("a threaded Writer needs a reactor (or synchronous=True)")
        self.db = db
        self.fsync: FsyncPolicy = fsync
        self.synchronous = synchronous
        self.max_group_ops = max_group_ops
        self.slow_write_seconds = slow_write_seconds
        self.stats = WriterStats()
        self.pending = 0
        """Submissions and jobs queued or being written, not yet fired."""
        self._reactor = reactor
        self._clock = clock
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopping = False
        self._stopped = False
        self._stop_waiters: list[Deferred[None]] = []
        self._thread: threading.Thread | None = None
        if not synchronous:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping

    def will_sync(self, requested: bool) -> bool:
        """Whether a write asking for ``requested`` sync is synced under the policy."""
        return requested and self.fsync == "always"

    # -- reactor-thread API ---------------------------------------------------
    def submit(self, ops: Sequence[Op], sync: bool = False) -> Deferred[None]:
        """Queue ``ops`` to be written atomically (possibly with others).

        The Deferred fires with None once the batch holding them is
        written (and fsynced if ``sync`` and the policy allows), or fails
        with the write's error -- as does every submission of that batch.
        """
        if self._stopping:
            return fail(WriterStopped("storage writer is stopped"))
        self.stats.submissions += 1
        if self.synchronous:
            group = [_Write(ops, sync, None)]
            try:
                seconds, synced = self._write(group)
            except Exception:
                self._account(group, 0.0, False)
                return fail()
            self._account(group, seconds, synced)
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.pending += 1
        self._queue.put(_Write(ops, sync, d))
        return d

    def run_job(self, fn: Callable[[DB], T]) -> Deferred[T]:
        """Run ``fn(db)`` on the writer thread, after every earlier submission.

        For multi-batch work that must not interleave with other writes
        (installing a snapshot). ``fn`` does its own writes and syncs; the
        Deferred fires with its result.
        """
        if self._stopping:
            return fail(WriterStopped("storage writer is stopped"))
        self.stats.jobs += 1
        if self.synchronous:
            try:
                return succeed(fn(self.db))
            except Exception:
                return fail()
        d: Deferred[T] = Deferred()
        self.pending += 1
        self._queue.put(_Job(fn, d))
        return d

    def stop(self) -> Deferred[None]:
        """Write everything queued so far, then end the thread.

        Later submissions fail with :class:`WriterStopped`.
        """
        if self._thread is None or self._stopped:
            self._stopping = True
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._stop_waiters.append(d)
        if not self._stopping:
            self._stopping = True
            self._queue.put(_STOP)
        return d

    # -- writer thread -----------------------------------------------------------
    def _write(self, group: list[_Write]) -> tuple[float, bool]:
        sync = self.fsync == "always" and any(w.sync for w in group)
        batch = self.db.write_batch(sync=sync)
        for w in group:
            for key, value in w.ops:
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
        start = self._clock()
        batch.write()
        return self._clock() - start, sync

    def _run(self) -> None:
        q = self._queue
        call = self._reactor.callFromThread  # type: ignore[union-attr]
        item = q.get()
        while True:
            if item is _STOP:
                call(self._finished)
                return
            if isinstance(item, _Job):
                try:
                    result = item.fn(self.db)
                except Exception as e:
                    call(self._job_failed, item, e)
                else:
                    call(self._job_done, item, result)
                item = q.get()
                continue
            assert isinstance(item, _Write)
            group = [item]
            nops = len(item.ops)
            following: object = None
            # Group commit: take whatever queued up while the last write ran.
            while nops < self.max_group_ops:
                try:
                    following = q.get_nowait()
                except queue.Empty:
                    following = None
                    break
                if not isinstance(following, _Write):
                    break
                group.append(following)
                nops += len(following.ops)
                following = None
            try:
                seconds, synced = self._write(group)
            except Exception as e:
                call(self._deliver, group, e, 0.0, False)
            else:
                call(self._deliver, group, None, seconds, synced)
            item = following if following is not None else q.get()

    # -- back on the reactor thread ---------------------------------------------
    def _account(self, group: list[_Write], seconds: float, synced: bool) -> None:
        st = self.stats
        st.batches += 1
        st.synced_batches += synced
        st.ops += sum(len(w.ops) for w in group)
        st.largest_group = max(st.largest_group, len(group))
        st.write_seconds += seconds
        if seconds > self.slow_write_seconds:
            st.slow_writes += 1
            _log.warn(
                "slow storage write: {seconds:.3f}s for {ops} ops in {n} submissions (sync={sync})",
                seconds=seconds,
                ops=sum(len(w.ops) for w in group),
                n=len(group),
                sync=synced,
            )

    def _deliver(
        self, group: list[_Write], error: Exception | None, seconds: float, synced: bool
    ) -> None:
        self.pending -= len(group)
        self._account(group, seconds, synced)
        for w in group:
            assert w.deferred is not None
            if error is None:
                w.deferred.callback(None)
            else:
                w.deferred.errback(error)

    def _job_done(self, job: _Job[T], result: T) -> None:
        self.pending -= 1
        job.deferred.callback(result)

    def _job_failed(self, job: _Job[T], error: Exception) -> None:
        self.pending -= 1
        job.deferred.errback(error)

    def _finished(self) -> None:
        self._stopped = True
        if self._thread is not None:
            self._thread.join()
        waiters, self._stop_waiters = self._stop_waiters, []
        for d in waiters:
            d.callback(None)
