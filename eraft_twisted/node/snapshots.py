"""Streaming snapshots between peers: open / chunk / end, each chunk acknowledged.

The sender reads a LevelDB snapshot (a frozen view: reads and writes go on)
in a thread, one chunk at a time, so memory stays bounded and the reactor
never waits on a scan. The receiver stages chunks on disk and only when the
stream ends hands the snapshot to its Raft core, which installs it
atomically through the next Ready. There is one staging area: from the end
of a stream until that install is done, a new stream is refused; before,
a new stream replaces an unfinished one, whose chunks are then refused.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

import msgpack
from twisted.internet import defer
from twisted.logger import Logger

from ..raft.types import ConfState, Message, MessageType, Snapshot, SnapshotMeta
from ..rpc.commands import SnapshotChunk, SnapshotEnd, SnapshotOpen, SnapshotRejected
from ..storage.layout import decode_items, encode_items

if TYPE_CHECKING:
    from .driver import RaftNode

log = Logger()

CHUNK_ITEMS = 2048
CHUNK_BYTES = 1 << 20


def encode_meta(meta: SnapshotMeta) -> bytes:
    """SnapshotMeta on the wire."""
    return msgpack.packb([meta.index, meta.term, list(meta.conf.voters), list(meta.conf.learners)])


def decode_meta(data: bytes) -> SnapshotMeta:
    """Inverse of :func:`encode_meta`."""
    index, term, voters, learners = msgpack.unpackb(data)
    return SnapshotMeta(index, term, ConfState(tuple(voters), tuple(learners)))


def _read_chunk(items: Iterator[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    chunk: list[tuple[bytes, bytes]] = []
    size = 0
    for k, v in islice(items, CHUNK_ITEMS):
        chunk.append((k, v))
        size += len(k) + len(v)
        if size >= CHUNK_BYTES:
            break
    return chunk


class SnapshotSender:
    """Streams this node's state machine to followers that fell behind."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node
        self.sending: set[int] = set()
        self.sent = 0

    def send(self, to: int, term: int) -> None:
        """Start a stream to ``to`` unless one is already running."""
        if to in self.sending:
            return
        self.sending.add(to)
        d = self._stream(to, term)

        def done(ok: bool) -> None:
            self.sending.discard(to)
            self.node.report_snapshot(to, ok)

        d.addCallback(done)

    @defer.inlineCallbacks
    def _stream(self, to: int, term: int) -> Generator[defer.Deferred[Any], Any, bool]:
        storage = self.node.storage
        transport = self.node.transport
        meta, snap = storage.outgoing_snapshot()
        items = storage.snapshot_items(snap)
        count = 0
        try:
            assert transport is not None  # only a node with a transport sends
            log.info("sending snapshot at index {index} to node {to}", index=meta.index, to=to)
            r = yield transport.call(
                to, SnapshotOpen, sender=self.node.node_id, term=term, meta=encode_meta(meta)
            )
            stream = r["stream"]
            while True:
                chunk = yield storage.reads.run(_read_chunk, items)
                if not chunk:
                    break
                count += len(chunk)
                yield transport.call(to, SnapshotChunk, stream=stream, items=encode_items(chunk))
            yield transport.call(to, SnapshotEnd, stream=stream)
            self.sent += 1
            log.info("snapshot sent to node {to}: {n} items", to=to, n=count)
            return True
        except Exception as e:
            log.warn("snapshot to node {to} failed: {e}", to=to, e=e)
            return False
        finally:
            del items
            snap.close()


class SnapshotReceiver:
    """Stages an incoming snapshot stream and hands it to the Raft core."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node
        self._current: tuple[int, int, int, SnapshotMeta] | None = None
        self.installing = False
        """A received snapshot waits for (or is in) its install from staging."""
        self.received = 0

    def open(self, sender: int, term: int, meta: bytes) -> defer.Deferred[int]:
        if self.installing:
            return defer.fail(SnapshotRejected("busy installing the previous snapshot"))
        if self.node.awaiting_admission:
            return defer.fail(SnapshotRejected("not a member of the group yet"))
        # Never reused, not even across restarts: a stale chunk cannot match.
        stream = random.getrandbits(62) + 1
        # A newer stream supersedes an unfinished one; its chunks get rejected.
        self._current = (stream, sender, term, decode_meta(meta))
        return self.node.storage.begin_snapshot_install().addCallback(lambda _: stream)

    def _check(self, stream: int) -> tuple[int, int, int, SnapshotMeta]:
        cur = self._current
        if cur is None or cur[0] != stream:
            raise SnapshotRejected("superseded by a newer snapshot stream")
        return cur

    def chunk(self, stream: int, items: bytes) -> defer.Deferred[None]:
        try:
            self._check(stream)
            decoded = decode_items(items)
        except Exception as e:
            return defer.fail(e if isinstance(e, SnapshotRejected) else SnapshotRejected(str(e)))
        return self.node.storage.stage_snapshot_items(decoded)

    def end(self, stream: int) -> defer.Deferred[None]:
        try:
            _, sender, term, meta = self._check(stream)
        except SnapshotRejected as e:
            return defer.fail(e)
        self._current = None
        self.installing = True
        self.received += 1
        self.node.receive_messages(
            [
                Message(
                    MessageType.SNAPSHOT,
                    to=self.node.node_id,
                    frm=sender,
                    term=term,
                    snapshot=Snapshot(meta),
                )
            ]
        )
        raw = self.node.raw
        pending = raw.raft.log.unstable.snapshot if raw is not None else None
        if pending is None or pending.meta.index != meta.index:
            self.installing = False  # the core did not take it: staging is free
        return defer.succeed(None)

    def installed(self) -> None:
        """The Ready carrying the received snapshot is done: staging is free."""
        self.installing = False
