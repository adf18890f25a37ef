"""The read queue of a Raft node: linearizable reads without log writes.

Reads that arrive between two rounds share one ReadIndex request; once the
core answers a round with the leader's commit index, its reads wait until
this node has applied that far, then run against the local state.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from ..raft.rawnode import RawNode
from ..raft.types import RaftError

T = TypeVar("T")


class _Read:
    __slots__ = ("fn", "d")

    def __init__(self, fn: Callable[[], object], d: defer.Deferred[Any]) -> None:
        self.fn = fn
        self.d = d


class ReadQueue:
    """Reads waiting for a ReadIndex round (unassigned), for its answer
    (batches by request context) and for the apply (indexed)."""

    def __init__(self, node_id: int, clock: IReactorTime) -> None:
        self.node_id = node_id
        self.clock = clock
        self._unassigned: list[_Read] = []
        self._batches: dict[bytes, tuple[float, list[_Read]]] = {}
        self._indexed: list[tuple[int, list[_Read]]] = []
        self._ctx_counter = itertools.count(1)

    def add(self, fn: Callable[[], T]) -> defer.Deferred[T]:
        """A read of ``fn``: fires with its result once it is linearizable."""
        d: defer.Deferred[T] = defer.Deferred()
        self._unassigned.append(_Read(fn, d))
        return d

    def issue(self, raw: RawNode) -> bool:
        """One ReadIndex request for every read that arrived since the last;
        False if there was none to ask for, or no leader to ask yet (the
        next tick tries again)."""
        if not self._unassigned:
            return False
        ctx = b"%d:%d" % (self.node_id, next(self._ctx_counter))
        try:
            raw.read_index(ctx)
        except RaftError:
            return False
        self._batches[ctx] = (self.clock.seconds(), self._unassigned)
        self._unassigned = []
        return True

    def reissue(self, older_than: float) -> None:
        """Ask again for batches waiting longer than ``older_than`` seconds:
        a ReadIndex request or its answer can be lost (a leader change, a
        dropped link)."""
        now = self.clock.seconds()
        for ctx, (issued, reads) in list(self._batches.items()):
            if now - issued >= older_than:
                del self._batches[ctx]
                self._unassigned.extend(r for r in reads if not r.d.called)

    def answered(self, index: int, ctx: bytes) -> None:
        """The core answered round ``ctx``: its reads wait for ``index``."""
        batch = self._batches.pop(ctx, None)
        if batch is not None:
            self._indexed.append((index, batch[1]))

    def serve(self, applied: int) -> None:
        """Run every read whose index is applied."""
        still: list[tuple[int, list[_Read]]] = []
        for index, reads in self._indexed:
            if index > applied:
                still.append((index, reads))
                continue
            for r in reads:
                if r.d.called:
                    continue
                try:
                    r.d.callback(r.fn())
                except Exception:
                    if not r.d.called:
                        r.d.errback()
        self._indexed = still

    def fail_all(self, err: Exception) -> None:
        """Fail every waiting read with ``err`` and forget them."""
        reads = list(self._unassigned)
        for _, batch in self._batches.values():
            reads.extend(batch)
        for _, batch in self._indexed:
            reads.extend(batch)
        self._unassigned, self._batches, self._indexed = [], {}, []
        for r in reads:
            if not r.d.called:
                r.d.errback(err)
