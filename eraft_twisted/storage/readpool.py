"""A bounded thread pool for blocking LevelDB reads, apart from the reactor's.

Scans, chunk reads of a snapshot or a migration, and any read that may
touch disk run here, never on the reactor thread. The pool is the
storage's own (as Tahoe-LAFS keeps its own CPU pool): the reactor's shared
pool also serves DNS lookups, and a burst of long scans there would delay
them. ``ReadPool(synchronous=True)`` runs each call inline and returns an
already-fired Deferred, so tests stay deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

READ_THREADS = 4
"""LevelDB reads run in parallel; a few threads are enough on a small machine."""


class ReadPool:
    """Runs blocking reads off the reactor, at most ``size`` at a time."""

    def __init__(
        self,
        reactor: IReactorFromThreads | None,
        size: int = READ_THREADS,
        synchronous: bool = False,
        name: str = "eraft-storage-reads",
    ) -> None:
        if reactor is None and not synchronous:
            raise TypeError("a threaded ReadPool needs a reactor (or synchronous=True)")
        self.reactor = reactor
        self.synchronous = synchronous
        self._pool: ThreadPool | None = None
        if not synchronous:
            self._pool = ThreadPool(minthreads=0, maxthreads=size, name=name)

    def run(self, fn: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        """``fn(*args)`` in the pool; the Deferred fires on the reactor thread."""
        if self._pool is None:
            return defer.maybeDeferred(fn, *args)
        if not self._pool.started:
            self._pool.start()
        assert self.reactor is not None
        return threads.deferToThreadPool(self.reactor, self._pool, fn, *args)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Wait for running reads to finish and stop the threads."""
        if self._pool is not None and self._pool.started:
            self._pool.stop()
