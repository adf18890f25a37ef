"""Learners: receive the log, never vote, are promoted once caught up."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.raft.core import Config
from eraft_twisted.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Message,
    MessageType,
    Role,
)
from eraft_twisted.testing.raftnet import Net

MT = MessageType


def no_promotion(nid: int) -> Config:
    return Config(nid, auto_promote_learners=False)


class LearnerTests(unittest.TestCase):
    def test_learner_never_campaigns(self) -> None:
        net = Net((1, 2), learners=(3,), config=no_promotion)
        out = net.tick(3, n=100)  # no leader: a voter would have campaigned long ago
        self.assertEqual(net.nodes[3].role, Role.FOLLOWER)
        self.assertEqual(net.nodes[3].term, 0)
        self.assertEqual(out, [])
        self.assertFalse(any(m.frm == 3 for m in net.sent))

    def test_learner_is_not_asked_to_vote_but_gets_the_log(self) -> None:
        net = Net((1, 2), learners=(3,), config=no_promotion)
        out = net.campaign(1)
        self.assertFalse(any(m.to == 3 for m in out if m.type in (MT.PREVOTE, MT.VOTE)))
        net.propose(1, b"x")
        self.assertEqual(net.data(3), [b"x"])
        self.assertEqual(net.nodes[3].conf, ConfState((1, 2), (3,)))

    def test_learner_does_not_count_in_the_quorum(self) -> None:
        net = Net((1, 2), learners=(3,), config=no_promotion)
        net.campaign(1)
        net.isolate(2)
        index = net.propose(1, b"x")
        self.assertEqual(net.raft(3).log.last_index(), index)  # the learner has it...
        self.assertLess(net.raft(1).log.committed, index)  # ...but that is no majority
        net.heal()
        net.tick(n=2)
        self.assertEqual(net.data(1), [b"x"])

    def test_learner_vote_is_not_counted(self) -> None:
        net = Net(
            (1, 2, 3),
            learners=(4, 5),
            config=lambda nid: Config(nid, auto_promote_learners=False, pre_vote=False),
        )
        net.isolate(2)
        net.isolate(3)
        for i in (4, 5):
            net.cut_links -= {(1, i), (i, 1)}
        net.campaign(1)
        self.assertEqual(net.nodes[1].role, Role.CANDIDATE)
        # Grants from the learners: 1 + 4 + 5 is still no majority of {1, 2, 3}.
        term = net.nodes[1].term
        for i in (4, 5):
            net.nodes[1].step(Message(MT.VOTE_RESP, to=1, frm=i, term=term))
        net.stabilize()
        self.assertEqual(net.nodes[1].role, Role.CANDIDATE)
        self.assertEqual(net.nodes[1].term, term)

    def test_added_learner_is_promoted_once_caught_up(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        for i in range(20):
            net.propose(1, b"e%d" % i)
        net.add_node(4)
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
        net.stabilize()
        for nid in (1, 2, 3, 4):
            self.assertEqual(net.nodes[nid].conf, ConfState((1, 2, 3, 4), ()))
        self.assertEqual(len(net.data(4)), 20)
        kinds = [
            ConfChangeType(e.data[0]).name for e in net.applied[1] if e.type.name == "CONF_CHANGE"
        ]
        self.assertEqual(kinds, ["ADD_LEARNER", "ADD_VOTER"])

    def test_learner_that_cannot_catch_up_stays_a_learner(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.add_node(4)
        net.isolate(4)
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
        net.tick(n=30)
        self.assertEqual(net.nodes[1].conf, ConfState((1, 2, 3), (4,)))
        net.heal()
        net.tick(n=3)
        self.assertEqual(net.nodes[1].conf, ConfState((1, 2, 3, 4), ()))
        self.assertEqual(net.nodes[4].conf, ConfState((1, 2, 3, 4), ()))

    def test_without_auto_promotion_the_learner_stays(self) -> None:
        net = Net((1, 2), learners=(3,), config=no_promotion)
        net.campaign(1)
        net.tick(n=20)
        self.assertEqual(net.nodes[1].conf, ConfState((1, 2), (3,)))
