"""Log compaction and snapshot install for a lagging node."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.raft.types import MessageType
from eraft_twisted.testing.raftnet import Net

MT = MessageType


class SnapshotTests(unittest.TestCase):
    def lagging(self) -> Net:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.propose(1, b"before")
        net.isolate(3)
        for i in range(20):
            net.propose(1, b"e%d" % i)
        for nid in (1, 2):
            net.snapshot(nid)
        net.propose(1, b"after snapshot")
        return net

    def test_lagging_node_gets_a_snapshot_then_entries(self) -> None:
        net = self.lagging()
        self.assertEqual(net.storages[1].first_index(), 23)
        net.heal()
        out = net.tick(n=2)
        self.assertEqual(net.count(out, MT.SNAPSHOT), 1)
        self.assertEqual(net.snapshots_installed.get(3), 1)
        self.assertEqual(net.data(3), net.data(1))
        self.assertEqual(net.storages[3].snapshot().meta.index, 22)
        net.propose(1, b"later")
        self.assertEqual(net.data(3)[-1], b"later")

    def test_failed_snapshot_is_sent_again(self) -> None:
        net = self.lagging()
        net.heal()
        lose = net.drop(MT.SNAPSHOT)
        net.tick(n=3)
        self.assertNotIn(3, net.snapshots_installed)
        net.filters.remove(lose)
        net.tick(n=3)
        self.assertEqual(net.snapshots_installed.get(3), 1)
        self.assertEqual(net.data(3), net.data(1))

    def test_restart_from_snapshot_and_log(self) -> None:
        net = self.lagging()
        before = net.data(1)
        net.crash(1)
        net.restart(1)
        net.stabilize()
        self.assertEqual(net.data(1), before)
        net.heal()
        net.tick(n=30)
        leader = net.leader()
        net.propose(leader, b"z")
        for nid in net.ids:
            self.assertEqual(net.data(nid), before + [b"z"])

    def test_snapshot_older_than_the_log_is_ignored(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        for i in range(5):
            net.propose(1, b"e%d" % i)
        snap = net.snapshot(1, compact=False)
        r2 = net.raft(2)
        self.assertFalse(r2.restore(snap))  # 2 already has everything up to it
        self.assertEqual(r2.log.committed, 6)
