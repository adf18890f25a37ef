"""Linearizable reads through ReadIndex (dissertation §6.4), no log write needed."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.raft.types import Message, MessageType, NotLeader, ReadState, Role
from eraft_twisted.testing.raftnet import Net

MT = MessageType


class ReadIndexTests(unittest.TestCase):
    def leader_net(self, **cfg: object) -> Net:
        net = Net((1, 2, 3), **cfg)
        net.campaign(1)
        net.propose(1, b"w")
        return net

    def test_leader_read_is_answered_at_the_commit_index(self) -> None:
        net = self.leader_net()
        net.nodes[1].read_index(b"r1")
        out = net.stabilize()
        self.assertEqual(net.read_states[1], [ReadState(2, b"r1")])
        self.assertEqual(net.count(out, MT.HEARTBEAT), 2)
        self.assertEqual(net.count(out, MT.APPEND), 0)  # nothing is written for a read

    def test_many_reads_share_one_heartbeat_round(self) -> None:
        net = self.leader_net()
        for i in range(50):
            net.nodes[1].read_index(b"r%d" % i)
        out = net.stabilize()
        self.assertEqual(net.count(out, MT.HEARTBEAT), 2)
        self.assertEqual(net.count(out, MT.HEARTBEAT_RESP), 2)
        self.assertEqual(
            [r.request_ctx for r in net.read_states[1]], [b"r%d" % i for i in range(50)]
        )
        self.assertTrue(all(r.index == 2 for r in net.read_states[1]))

    def test_read_needs_acks_from_a_quorum(self) -> None:
        net = self.leader_net()
        f2 = net.drop(MT.HEARTBEAT_RESP, frm=2)
        net.drop(MT.HEARTBEAT_RESP, frm=3)
        net.nodes[1].read_index(b"r")
        net.stabilize()
        self.assertEqual(net.read_states[1], [])
        net.filters.remove(f2)
        net.tick(1)  # the next heartbeat carries the pending read's context again
        self.assertEqual(net.read_states[1], [ReadState(2, b"r")])

    def test_new_leader_answers_only_after_its_first_entry_commits(self) -> None:
        net = Net((1, 2, 3))
        block = net.drop(MT.APPEND, frm=1)
        net.campaign(1)
        self.assertEqual(net.nodes[1].role, Role.LEADER)
        net.nodes[1].read_index(b"early")
        net.tick(1, n=3)  # heartbeats are acked, but the no-op is not committed
        self.assertEqual(net.raft(1).log.committed, 0)
        self.assertEqual(net.read_states[1], [])
        net.filters.remove(block)
        net.tick(1)
        self.assertEqual(net.raft(1).log.committed, 1)
        self.assertEqual(net.read_states[1], [ReadState(1, b"early")])

    def test_isolated_leader_never_answers(self) -> None:
        for check_quorum in (True, False):
            net = self.leader_net(check_quorum=check_quorum)
            net.isolate(1)
            net.nodes[1].read_index(b"r")
            net.tick(n=50)  # the others elect a new leader meanwhile
            self.assertNotEqual(net.leader(), 1)
            net.heal()
            net.tick(n=50)
            self.assertEqual(net.read_states[1], [], f"check_quorum={check_quorum}")

    def test_leader_that_was_not_replaced_answers_after_healing(self) -> None:
        # Without CheckQuorum an isolated leader keeps its role; if nobody else
        # was elected meanwhile it is still the leader, and may answer.
        net = self.leader_net(check_quorum=False)
        net.isolate(1)
        net.nodes[1].read_index(b"r")
        net.tick(1, n=50)
        self.assertEqual(net.read_states[1], [])
        net.heal()
        net.tick(1)
        self.assertEqual(net.read_states[1], [ReadState(2, b"r")])

    def test_follower_read_goes_through_the_leader(self) -> None:
        net = self.leader_net()
        net.nodes[3].read_index(b"f")
        out = net.stabilize()
        self.assertEqual(net.read_states[3], [ReadState(2, b"f")])
        kinds = [
            (m.type, m.frm, m.to) for m in out if m.type in (MT.READ_INDEX, MT.READ_INDEX_RESP)
        ]
        self.assertEqual(kinds, [(MT.READ_INDEX, 3, 1), (MT.READ_INDEX_RESP, 1, 3)])

    def test_follower_read_index_covers_earlier_writes(self) -> None:
        net = self.leader_net()
        index = net.propose(1, b"w2")
        net.nodes[2].read_index(b"f")
        net.stabilize()
        self.assertGreaterEqual(net.read_states[2][0].index, index)

    def test_follower_without_leader_raises(self) -> None:
        net = Net((1, 2, 3))
        with self.assertRaises(NotLeader):
            net.nodes[2].read_index(b"f")

    def test_forwarded_read_reaching_a_non_leader_is_dropped(self) -> None:
        # Regression: a follower's READ_INDEX that reaches a node which is no
        # longer leader used to raise out of RawNode.step.
        net = self.leader_net()
        net.nodes[2].step(Message(MT.READ_INDEX, to=2, frm=3, context=b"stale"))
        net.stabilize()
        self.assertEqual(net.read_states[2], [])
        self.assertEqual(net.read_states[3], [])

    def test_local_message_types_still_refused_from_peers(self) -> None:
        net = self.leader_net()
        with self.assertRaises(ValueError):
            net.nodes[1].step(Message(MT.PROPOSE, to=1, frm=2))

    def test_single_node_answers_at_once(self) -> None:
        net = Net((1,))
        net.campaign(1)
        net.nodes[1].read_index(b"r")
        net.stabilize()
        self.assertEqual(net.read_states[1], [ReadState(1, b"r")])
