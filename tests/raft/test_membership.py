"""One-at-a-time membership changes, in effect from the moment they are appended."""

from __future__ import annotations

import random

from twisted.trial import unittest

from eraft_twisted.raft.confchange import encode_conf_change
from eraft_twisted.raft.core import Config
from eraft_twisted.raft.rawnode import RawNode
from eraft_twisted.raft.storage import MemoryStorage
from eraft_twisted.raft.types import (
    ConfChange,
    ConfChangeInProgress,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RaftError,
    Role,
)
from eraft_twisted.testing.raftnet import Net

MT = MessageType
ADD_LEARNER = ConfChangeType.ADD_LEARNER
REMOVE = ConfChangeType.REMOVE


class MembershipTests(unittest.TestCase):
    def test_removing_the_leader_hands_off_at_once(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.propose(1, b"x")
        net.nodes[1].propose_conf_change(ConfChange(REMOVE, 1))
        out = net.stabilize()  # no tick: TimeoutNow goes to the most caught-up voter
        self.assertEqual(net.count(out, MT.TIMEOUT_NOW, frm=1), 1)
        new = net.leader()
        self.assertIn(new, (2, 3))
        self.assertEqual(net.nodes[1].role, Role.FOLLOWER)
        for nid in (2, 3):
            self.assertEqual(net.nodes[nid].conf, ConfState((2, 3), ()))
        # The removed node stays quiet.
        sent = len(net.sent)
        net.tick(1, n=100)
        self.assertFalse(any(m.frm == 1 for m in net.sent[sent:]))
        net.propose(new, b"y")
        self.assertEqual(net.data(new), [b"x", b"y"])

    def test_removed_follower_no_longer_counts(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.nodes[1].propose_conf_change(ConfChange(REMOVE, 3))
        net.stabilize()
        self.assertEqual(net.nodes[1].conf, ConfState((1, 2), ()))
        # 3 stays up: with 1 it would be a majority of {1, 2, 3}, but not of {1, 2}.
        net.crash(2)
        mark = len(net.sent)
        index = net.propose(1, b"alone?")
        net.tick(1, n=3)
        self.assertLess(net.raft(1).log.committed, index)
        self.assertEqual(net.data(1), [])
        self.assertFalse(any(m.to == 3 for m in net.sent[mark:]))
        net.restart(2)
        net.tick(n=2)
        self.assertEqual(net.data(1), [b"alone?"])
        self.assertEqual(net.data(2), [b"alone?"])

    def test_one_change_at_a_time(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.nodes[1].propose_conf_change(ConfChange(REMOVE, 3))
        with self.assertRaises(ConfChangeInProgress):
            net.nodes[1].propose_conf_change(ConfChange(REMOVE, 2))
        net.stabilize()
        net.nodes[1].propose_conf_change(ConfChange(REMOVE, 2))

    def test_new_leader_waits_for_its_first_commit(self) -> None:
        net = Net((1, 2, 3))
        block = net.drop(MT.APPEND, frm=1)
        net.campaign(1)
        with self.assertRaises(ConfChangeInProgress):
            net.nodes[1].propose_conf_change(ConfChange(REMOVE, 3))
        net.filters.remove(block)
        net.tick(1)
        net.nodes[1].propose_conf_change(ConfChange(REMOVE, 3))

    def test_invalid_changes_raise(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        for cc in (ConfChange(REMOVE, 9), ConfChange(ConfChangeType.ADD_VOTER, 2)):
            with self.assertRaises(RaftError):
                net.nodes[1].propose_conf_change(cc)
        with self.assertRaises(RaftError):
            Net((1,)).nodes[1].propose_conf_change(ConfChange(REMOVE, 1))

    def test_removed_node_can_be_added_back(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.nodes[1].propose_conf_change(ConfChange(REMOVE, 3))
        net.stabilize()
        net.propose(1, b"while out")
        net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 3))
        net.stabilize()
        net.tick(n=2)
        self.assertEqual(net.nodes[1].conf, ConfState((1, 2, 3), ()))
        self.assertEqual(net.nodes[3].conf, ConfState((1, 2, 3), ()))
        self.assertEqual(net.data(3), [b"while out"])

    def test_restart_with_a_conf_entry_in_the_log(self) -> None:
        # Regression: Raft.__init__ read self.role before setting it when the
        # log held a conf change (any restart after a membership change).
        st = MemoryStorage(ConfState((1, 2, 3)))
        cc = ConfChange(ADD_LEARNER, 4)
        st.append(
            [Entry(1, 1, EntryType.CONF_CHANGE, encode_conf_change(cc, ConfState((1, 2, 3), (4,))))]
        )
        st.set_hard_state(HardState(1, -1, 1))
        n = RawNode(Config(1), st, random.Random(0))
        self.assertEqual(n.conf, ConfState((1, 2, 3), (4,)))
        self.assertEqual(n.conf_at(0), ConfState((1, 2, 3)))

    def test_stale_append_does_not_forget_a_later_conf_entry(self) -> None:
        # Regression (sim seeds 47, 174, 202, 231, 379 at the time): a delayed or
        # duplicated append that is a prefix of the log made the follower drop
        # the (not yet committed) conf entry that followed it.
        net = Net((1, 2, 3))
        net.campaign(1)
        net.drop(MT.APPEND_RESP)  # nothing after the no-op commits
        net.propose(1, b"x")
        old = next(
            m
            for m in net.delivered
            if m.type == MT.APPEND and m.to == 2 and m.entries and m.entries[-1].data == b"x"
        )
        net.add_node(4)
        net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
        net.stabilize()
        want = ConfState((1, 2, 3), (4,))
        self.assertEqual(net.nodes[2].conf, want)
        self.assertEqual(net.raft(2).log.committed, 1)
        net.nodes[2].step(old)  # the old append arrives again
        net.stabilize()
        self.assertEqual(net.raft(2).log.last_index(), 3)
        self.assertEqual(net.nodes[2].conf, want)

    def test_deposed_leader_with_uncommitted_self_removal_is_elected_again(self) -> None:
        # Regression (sim seed 438 at the time): leader 2 appended its own
        # removal and lost leadership before replicating it. 1 (config {1, 2})
        # needs 2's vote; 2 has the longer log so refuses it, and 2 thought it
        # was no voter so never campaigned: no leader ever again. Dissertation
        # §4.2.2: such a node still campaigns, without counting its own vote.
        net = Net((1, 2))
        net.campaign(2)
        block = net.drop(MT.APPEND, frm=2)
        net.nodes[2].propose_conf_change(ConfChange(REMOVE, 2))
        net.stabilize()
        self.assertEqual(net.nodes[2].conf, ConfState((1,), ()))
        self.assertEqual(net.nodes[1].conf, ConfState((1, 2), ()))
        net.filters.remove(block)
        net.isolate(2)
        net.tick(n=40)  # CheckQuorum deposes 2 (which keeps trying to get elected)
        self.assertNotEqual(net.nodes[2].role, Role.LEADER)
        self.assertTrue(net.raft(2).promotable())
        net.heal()
        net.tick(n=60)
        self.assertEqual(net.leader(), 1)
        self.assertEqual(net.nodes[1].conf, ConfState((1,), ()))
        self.assertEqual(net.nodes[2].role, Role.FOLLOWER)
        self.assertFalse(net.raft(2).promotable())  # its removal is committed now

    def test_conf_entry_truncated_with_the_log_is_undone(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.isolate(1)
        net.nodes[1].propose_conf_change(ConfChange(REMOVE, 3))
        self.assertEqual(net.nodes[1].conf, ConfState((1, 2), ()))
        net.tick(n=40)  # 2 or 3 takes over without the change
        net.heal()
        net.tick(n=5)
        self.assertEqual(net.nodes[1].conf, ConfState((1, 2, 3), ()))

    def test_message_from_a_non_member_is_harmless(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.nodes[1].step(Message(MT.APPEND_RESP, to=1, frm=9, term=1, index=100))
        net.stabilize()
        self.assertEqual(net.raft(1).log.committed, 1)

    def test_member_with_a_higher_term_and_stale_config_is_reached(self) -> None:
        # Regression (seed 14986 of a 20,000-seed run at the time): without
        # PreVote and CheckQuorum a follower ignored appends of a lower term.
        # A re-added node whose stale config did not include the leader ran
        # its term up campaigning where nobody listened, and the leader never
        # learned of that term: the node never caught up. Replying with our
        # term (as the paper does) lets the leader step down and re-elect.
        net = Net((1, 2, 3), pre_vote=False, check_quorum=False)
        net.campaign(1)
        net.isolate(3)
        for _ in range(3):
            net.campaign(3)
        self.assertEqual(net.nodes[3].term, 4)
        net.heal()
        net.drop(MT.VOTE, frm=3)  # its campaigns reach nobody
        net.tick(1)
        self.assertEqual(net.nodes[1].role, Role.FOLLOWER)
        self.assertEqual(net.nodes[1].term, 4)
        net.tick(n=60)
        # The group moved past 3's term, and 3 follows the new leader.
        leader = net.leader()
        self.assertGreater(net.nodes[leader].term, 4)
        self.assertEqual(net.nodes[3].term, net.nodes[leader].term)
        self.assertEqual(net.nodes[3].leader, leader)
        net.propose(leader, b"x")
        self.assertEqual(net.data(3), [b"x"])
