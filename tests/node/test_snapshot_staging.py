"""One staging area for received snapshots: no stream may spoil another's."""

from __future__ import annotations

import random

from twisted.internet import task
from twisted.trial import unittest

from eraft_twisted.node.driver import RaftNode
from eraft_twisted.node.snapshots import encode_meta
from eraft_twisted.raft.core import Config
from eraft_twisted.raft.types import ConfState, Entry, Message, MessageType, SnapshotMeta
from eraft_twisted.rpc.commands import SnapshotRejected
from eraft_twisted.storage.layout import data_key, encode_items
from tests.node.test_fail_stop import App, Transport
from tests.node.test_ready_order import Durable, RecordingStorage

CONF = ConfState((0, 1, 2))


def items(value: bytes, *keys: bytes) -> bytes:
    return encode_items([(data_key(k), value) for k in keys])


class SnapshotStagingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.storage = RecordingStorage.in_memory(CONF)
        self.storage.durable = Durable()
        # A long election timeout: node 0 stays a follower of the fake leader 1.
        self.node = RaftNode(
            0,
            self.storage,
            App(),
            self.clock,
            config=Config(0, election_tick=1000),
            rng=random.Random(0),
        )
        self.node.transport = Transport()  # type: ignore[assignment]
        self.node.startService()
        self.addCleanup(self.node.stopService)

    def stream(self, sender: int, index: int, payload: bytes) -> int:
        meta = encode_meta(SnapshotMeta(index, 1, CONF))
        stream = self.successResultOf(self.node.snapshot_open(sender, 1, meta))
        self.successResultOf(self.node.snapshot_chunk(stream, payload))
        return stream

    def value(self, key: bytes) -> bytes | None:
        return self.storage.get_raw(data_key(key))

    def test_a_new_stream_waits_until_the_received_snapshot_is_installed(self) -> None:
        # A Ready is being written when stream A ends, so A's install waits
        # for the next Ready; that first Ready finishing must not free staging.
        self.storage.held = []
        append = Message(MessageType.APPEND, to=0, frm=1, term=1, entries=(Entry(1, 1),), commit=0)
        self.node.receive_messages([append])
        self.clock.advance(0)
        a = self.stream(1, 10, items(b"A", b"k1", b"k2"))
        self.successResultOf(self.node.snapshot_end(a))
        held, self.storage.held = self.storage.held, None
        for gate in held:
            gate.callback(None)
        # Another leader starts a stream before A is installed.
        meta_b = encode_meta(SnapshotMeta(12, 1, CONF))
        self.failureResultOf(self.node.snapshot_open(2, 1, meta_b), SnapshotRejected)
        self.clock.advance(0)
        self.assertEqual(self.storage.snapshot().meta.index, 10)
        self.assertEqual((self.value(b"k1"), self.value(b"k2")), (b"A", b"A"))
        # Installed: the staging area takes a new stream again.
        self.successResultOf(self.node.snapshot_open(2, 1, meta_b))

    def test_a_superseded_stream_cannot_touch_the_new_ones_staging(self) -> None:
        a = self.stream(1, 10, items(b"A", b"k1"))
        b = self.stream(2, 12, items(b"B", b"k2"))
        self.failureResultOf(self.node.snapshot_chunk(a, items(b"A", b"k3")), SnapshotRejected)
        self.failureResultOf(self.node.snapshot_end(a), SnapshotRejected)
        self.successResultOf(self.node.snapshot_end(b))
        self.clock.advance(0)
        self.assertEqual(self.storage.snapshot().meta.index, 12)
        got = [self.value(k) for k in (b"k1", b"k2", b"k3")]
        self.assertEqual(got, [None, b"B", None])

    def test_a_snapshot_the_core_does_not_take_frees_the_staging_area(self) -> None:
        a = self.stream(1, 10, items(b"A", b"k1"))
        self.successResultOf(self.node.snapshot_end(a))
        self.clock.advance(0)
        # An older snapshot than the one installed: the core ignores it.
        old = self.stream(1, 5, items(b"old", b"k1"))
        self.successResultOf(self.node.snapshot_end(old))
        self.assertFalse(self.node.snapshot_receiver.installing)
        self.clock.advance(0)
        self.assertEqual(self.value(b"k1"), b"A")
