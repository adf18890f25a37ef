"""Leadership transfer (dissertation §3.10): TimeoutNow once the target caught up."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.raft.types import NONE, MessageType, NotLeader, ProposalDropped, Role
from eraft_twisted.testing.raftnet import Net

MT = MessageType


class TransferTests(unittest.TestCase):
    def test_transfer_to_an_up_to_date_follower_is_immediate(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.propose(1, b"x")
        net.nodes[1].transfer_leader(3)
        out = net.stabilize()  # no tick needed
        self.assertEqual(net.leader(), 3)
        self.assertEqual(net.nodes[3].term, 2)
        self.assertEqual(net.count(out, MT.TIMEOUT_NOW), 1)
        self.assertEqual(net.nodes[1].leader, 3)
        net.propose(3, b"y")
        self.assertEqual(net.data(1), [b"x", b"y"])

    def test_lagging_target_is_caught_up_first(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.isolate(3)
        for i in range(5):
            net.propose(1, b"e%d" % i)
        net.heal()
        net.nodes[1].transfer_leader(3)
        net.stabilize()
        self.assertEqual(net.leader(), 3)
        self.assertEqual(net.data(3), [b"e%d" % i for i in range(5)])

    def test_transfer_to_a_dead_target_aborts_after_an_election_timeout(self) -> None:
        net = Net((1, 2, 3), election_tick=10)
        net.campaign(1)
        net.crash(3)
        net.nodes[1].transfer_leader(3)
        net.stabilize()
        self.assertEqual(net.raft(1).lead_transferee, 3)
        with self.assertRaises(ProposalDropped):
            net.nodes[1].propose(b"during transfer")
        net.tick(1, n=9)
        self.assertEqual(net.raft(1).lead_transferee, 3)
        net.tick(1, n=1)
        self.assertEqual(net.raft(1).lead_transferee, NONE)
        self.assertEqual(net.leader(), 1)
        net.propose(1, b"after")
        self.assertEqual(net.data(2), [b"after"])

    def test_conf_change_refused_during_transfer(self) -> None:
        from eraft_twisted.raft.types import ConfChange, ConfChangeType

        net = Net((1, 2, 3))
        net.campaign(1)
        net.crash(3)
        net.nodes[1].transfer_leader(3)
        with self.assertRaises(ProposalDropped):
            net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE, 2))

    def test_transfer_to_self_or_non_member_is_ignored(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.nodes[1].transfer_leader(1)
        net.nodes[1].transfer_leader(9)
        net.stabilize()
        self.assertEqual(net.raft(1).lead_transferee, NONE)
        self.assertEqual(net.leader(), 1)

    def test_transfer_on_a_follower_raises(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        with self.assertRaises(NotLeader) as cm:
            net.nodes[2].transfer_leader(3)
        self.assertEqual(cm.exception.leader, 1)

    def test_target_wins_despite_the_lease(self) -> None:
        net = Net((1, 2, 3, 4, 5))
        net.campaign(1)
        net.tick(n=2)
        net.nodes[1].transfer_leader(5)
        net.stabilize()
        self.assertEqual(net.leader(), 5)
        self.assertTrue(all(net.nodes[i].role == Role.FOLLOWER for i in (1, 2, 3, 4)))
