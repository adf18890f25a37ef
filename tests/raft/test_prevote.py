"""PreVote (dissertation §9.6): a rejoining node does not disrupt a healthy leader."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.raft.types import MessageType, Role
from eraft_twisted.testing.raftnet import Net

MT = MessageType


class PreVoteTests(unittest.TestCase):
    def test_partitioned_node_does_not_bump_term_or_depose_leader(self) -> None:
        net = Net((1, 2, 3), seed=1)
        net.campaign(1)
        net.isolate(3)
        net.tick(n=100)  # many election timeouts for node 3
        self.assertEqual(net.nodes[3].term, 1)
        self.assertEqual(net.nodes[3].role, Role.PRE_CANDIDATE)
        net.propose(1, b"while 3 was away")
        net.heal()
        net.tick(n=30)
        self.assertEqual(net.leader(), 1)
        self.assertEqual([net.nodes[i].term for i in net.ids], [1, 1, 1])
        self.assertEqual(net.data(3), [b"while 3 was away"])

    def test_without_prevote_the_rejoining_node_deposes_the_leader(self) -> None:
        net = Net((1, 2, 3), seed=1, pre_vote=False, check_quorum=False)
        net.campaign(1)
        net.isolate(3)
        net.tick(3, n=100)
        self.assertGreater(net.nodes[3].term, 1)
        net.heal()
        net.tick(n=net.raft(3).cfg.election_tick * 2)  # 3 campaigns with its higher term
        self.assertGreater(net.nodes[1].term, 1)
        self.assertEqual(net.nodes[net.leader()].term, net.nodes[3].term)

    def test_prevote_does_not_change_any_term(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.isolate(1)  # followers lose their leader
        net.raft(3).randomized_election_timeout = 10**6  # only 2 times out
        start = len(net.delivered)
        net.tick(n=25)
        self.assertEqual(net.leader(), 2)
        self.assertEqual(net.nodes[2].term, 2)
        later = net.delivered[start:]
        pre = [m for m in later if m.type == MT.PREVOTE]
        # Pre-votes are sent for term+1, but only the real vote moved 3 to term 2.
        self.assertTrue(pre and all(m.term == 2 for m in pre))
        self.assertEqual(net.count(later, MT.VOTE), 1)

    def test_prevote_rejected_for_a_stale_log(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.isolate(3)
        net.propose(1, b"x")
        net.isolate(1)  # 2 has the entry, 3 does not; no leader reachable
        net.cut_links.discard((2, 3))
        net.cut_links.discard((3, 2))
        net.drop(MT.PREVOTE, frm=2)  # only 3 may campaign
        net.tick(n=40)
        self.assertEqual(net.nodes[3].term, 1)
        self.assertNotEqual(net.nodes[3].role, Role.LEADER)
        rejects = [m for m in net.delivered if m.type == MT.PREVOTE_RESP and m.to == 3]
        self.assertTrue(rejects and all(m.reject for m in rejects))
