"""CheckQuorum and the leader lease on followers."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.raft.types import Message, MessageType, Role
from eraft_twisted.testing.raftnet import Net

MT = MessageType


class CheckQuorumTests(unittest.TestCase):
    def test_leader_steps_down_without_a_majority(self) -> None:
        net = Net((1, 2, 3), election_tick=10)
        net.campaign(1)
        net.isolate(1)
        # The votes that elected it count as activity for the first timeout,
        # so it steps down after at most two election timeouts.
        net.tick(1, n=19)
        self.assertEqual(net.nodes[1].role, Role.LEADER)
        net.tick(1, n=1)
        self.assertEqual(net.nodes[1].role, Role.FOLLOWER)
        self.assertEqual(net.nodes[1].term, 1)

    def test_leader_stays_with_a_majority(self) -> None:
        net = Net((1, 2, 3), election_tick=10)
        net.campaign(1)
        net.isolate(3)
        net.tick(n=50)
        self.assertEqual(net.nodes[1].role, Role.LEADER)
        self.assertEqual(net.nodes[1].term, 1)

    def test_without_check_quorum_an_isolated_leader_stays(self) -> None:
        net = Net((1, 2, 3), check_quorum=False)
        net.campaign(1)
        net.isolate(1)
        net.tick(1, n=50)
        self.assertEqual(net.nodes[1].role, Role.LEADER)

    def test_follower_with_a_live_leader_ignores_votes(self) -> None:
        net = Net((1, 2, 3), pre_vote=False)
        net.campaign(1)
        net.tick(n=2)
        f = net.raft(2)
        sent = len(f.msgs)
        f.step(Message(MT.VOTE, to=2, frm=3, term=5, index=10, log_term=5))
        self.assertEqual(f.term, 1)  # not even the term moves
        self.assertEqual(f.leader, 1)
        self.assertEqual(len(f.msgs), sent)
        # Once the lease has expired the same request is granted.
        net.isolate(2)
        net.tick(2, n=net.nodes[2].raft.cfg.election_tick)
        f.step(Message(MT.VOTE, to=2, frm=3, term=5, index=10, log_term=5))
        self.assertEqual(f.term, 5)
        self.assertEqual(f.vote, 3)

    def test_leader_transfer_vote_bypasses_the_lease(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.nodes[1].transfer_leader(3)
        net.stabilize()
        self.assertEqual(net.leader(), 3)
        self.assertEqual(net.nodes[3].term, 2)
