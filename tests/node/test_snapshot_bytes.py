"""RaftNode's --snapshot-bytes: a snapshot once the log since the last one
exceeds a byte bound, whatever the entry count."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import task
from twisted.trial import unittest

from eraft_twisted.node.driver import RaftNode
from eraft_twisted.raft.core import Config
from eraft_twisted.raft.types import ConfState, Entry, Snapshot
from eraft_twisted.storage.leveldb import LevelDBStorage


class CountingApp:
    """Applies nothing but the applied index."""

    def __init__(self, storage: LevelDBStorage) -> None:
        self.storage = storage

    def apply_batch(self, entries: list[Entry], conf_state: ConfState | None) -> list[Any]:
        self.storage.apply_ops([], entries[-1].index, conf_state)
        return [None] * len(entries)

    def restore_snapshot(self, snapshot: Snapshot) -> None:
        pass


class SnapshotBytesTests(unittest.TestCase):
    def node(
        self, snapshot_bytes: int, keep_entries: int = 2
    ) -> tuple[RaftNode, LevelDBStorage, task.Clock]:
        clock = task.Clock()
        storage = LevelDBStorage.in_memory(ConfState((0,)))
        node = RaftNode(
            0,
            storage,
            CountingApp(storage),
            clock,
            config=Config(0, election_tick=10),
            rng=random.Random(0),
            snapshot_entries=0,
            keep_entries=keep_entries,
            snapshot_bytes=snapshot_bytes,
        )
        node.startService()
        self.addCleanup(node.stopService)
        for _ in range(30):
            clock.advance(0.1)
        self.assertTrue(node.is_leader)
        return node, storage, clock

    def write(self, node: RaftNode, clock: task.Clock, n: int, size: int) -> None:
        for i in range(n):
            d = node.propose(b"%05d" % i + b"x" * (size - 5))
            clock.advance(0.01)
            self.successResultOf(d)

    def test_snapshot_when_the_log_since_the_last_one_exceeds_the_bound(self) -> None:
        node, storage, clock = self.node(snapshot_bytes=10_000)
        snapshots = []
        for _ in range(40):
            self.write(node, clock, 1, 1000)
            clock.advance(0.01)
            snap = storage.snapshot().meta.index
            if not snapshots or snapshots[-1] != snap:
                snapshots.append(snap)
            applied = node.raw.raft.log.applied  # type: ignore[union-attr]
            # Never more than the bound plus the entry that crossed it.
            self.assertLessEqual(storage.log_bytes(snap + 1, applied + 1), 10_000 + 1024)
        # About one snapshot per 10 entries of ~1 KB, each dropping the log
        # but the 2 entries kept for slow followers.
        self.assertGreaterEqual(len(snapshots), 4)
        self.assertLessEqual(storage.last_index() - storage.first_index() + 1, 2 + 11)

    def test_the_log_kept_for_lagging_followers_is_bounded_by_bytes_too(self) -> None:
        node, storage, clock = self.node(snapshot_bytes=10_000, keep_entries=1000)
        self.write(node, clock, 15, 1000)
        clock.advance(0.01)
        self.assertGreater(storage.snapshot().meta.index, 0)
        first = storage.first_index()
        self.assertLessEqual(storage.log_bytes(first, storage.snapshot().meta.index + 1), 10_000)
        self.assertGreater(first, 2)

    def test_zero_turns_it_off(self) -> None:
        node, storage, clock = self.node(snapshot_bytes=0)
        self.write(node, clock, 40, 1000)
        self.assertEqual(storage.snapshot().meta.index, 0)
        self.assertGreater(storage.log_bytes(1, storage.last_index() + 1), 40_000)
