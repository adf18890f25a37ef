"""Proposals fail fast on a non-leader, with a hint, instead of being dropped."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.raft.types import NONE, NotLeader, ProposalDropped, RaftError, Role
from eraft_twisted.testing.raftnet import Net


class ProposalTests(unittest.TestCase):
    def test_follower_raises_not_leader_with_hint(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(2)
        for nid in (1, 3):
            with self.assertRaises(NotLeader) as cm:
                net.nodes[nid].propose(b"x")
            self.assertEqual(cm.exception.leader, 2)
            self.assertIn("leader hint: 2", str(cm.exception))

    def test_follower_without_leader_has_no_hint(self) -> None:
        net = Net((1, 2, 3))
        with self.assertRaises(NotLeader) as cm:
            net.nodes[1].propose(b"x")
        self.assertEqual(cm.exception.leader, NONE)

    def test_candidate_raises_not_leader(self) -> None:
        net = Net((1, 2, 3), pre_vote=False)
        net.isolate(1)
        net.campaign(1)
        self.assertEqual(net.nodes[1].role, Role.CANDIDATE)
        with self.assertRaises(NotLeader) as cm:
            net.nodes[1].propose(b"x")
        self.assertEqual(cm.exception.leader, NONE)

    def test_leader_returns_index_and_term_of_the_entry(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        index = net.propose(1, b"x")
        self.assertEqual(index, 2)
        e = net.applied[3][-1]
        self.assertEqual((e.index, e.term, e.data), (2, 1, b"x"))

    def test_nothing_is_written_by_a_failed_proposal(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        before = net.raft(2).log.last_index()
        with self.assertRaises(NotLeader):
            net.nodes[2].propose(b"x")
        net.stabilize()
        self.assertEqual(net.raft(2).log.last_index(), before)
        self.assertFalse(net.nodes[2].has_ready())

    def test_deposed_leader_proposal_is_superseded(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.isolate(1)
        index = net.propose(1, b"lost")  # accepted, but can never commit
        net.tick(n=40)
        net.heal()
        net.tick(n=5)
        new = net.leader()
        self.assertNotEqual(new, 1)
        e = net.raft(1).log.entries(index)[0]
        self.assertNotEqual(e.data, b"lost")
        self.assertNotIn(b"lost", net.data(1))

    def test_proposal_dropped_is_a_raft_error(self) -> None:
        # A leader handing off its leadership refuses proposals: the driver
        # catches every refusal as a RaftError, and nothing reaches the log.
        net = Net((1, 2, 3))
        net.campaign(1)
        net.crash(3)
        net.nodes[1].transfer_leader(3)  # 3 is down: the transfer stays pending
        net.stabilize()
        before = net.raft(1).log.last_index()
        with self.assertRaises(RaftError) as cm:
            net.nodes[1].propose(b"x")
        self.assertIsInstance(cm.exception, ProposalDropped)
        net.stabilize()
        self.assertEqual(net.raft(1).log.last_index(), before)
        self.assertNotIn(b"x", net.data(2))
