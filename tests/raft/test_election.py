"""Leader election (Raft §5.2, §5.4.1)."""

from __future__ import annotations

import random

from twisted.trial import unittest

from eraft_twisted.raft.core import Config, Raft
from eraft_twisted.raft.storage import MemoryStorage
from eraft_twisted.raft.types import NONE, ConfState, HardState, Message, MessageType, Role
from eraft_twisted.testing.raftnet import Net, preset_storage

MT = MessageType


def vote(frm: int, to: int, term: int, index: int = 0, log_term: int = 0) -> Message:
    return Message(MT.VOTE, to=to, frm=frm, term=term, index=index, log_term=log_term)


class ElectionTests(unittest.TestCase):
    def test_ticks_elect_exactly_one_leader(self) -> None:
        net = Net((1, 2, 3), seed=7)
        net.tick(n=25)
        leaders = [i for i in net.ids if net.nodes[i].role == Role.LEADER]
        self.assertEqual(len(leaders), 1)
        lead = leaders[0]
        for i in net.ids:
            self.assertEqual(net.nodes[i].leader, lead)
            self.assertEqual(net.nodes[i].term, net.nodes[lead].term)

    def test_campaign_wins_and_appends_noop(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        self.assertEqual(net.nodes[1].role, Role.LEADER)
        self.assertEqual(net.nodes[1].term, 1)
        # The first entry of a term is an empty entry of that term, and it commits.
        for i in net.ids:
            self.assertEqual([(e.index, e.term) for e in net.applied[i]], [(1, 1)])

    def test_single_node_elects_itself(self) -> None:
        net = Net((1,))
        net.tick(n=25)
        self.assertEqual(net.nodes[1].role, Role.LEADER)

    def test_election_timeout_is_randomized_in_range(self) -> None:
        r = Raft(Config(1, election_tick=10), MemoryStorage(ConfState((1, 2, 3))), random.Random(3))
        seen = set()
        for _ in range(200):
            r.reset(r.term)
            seen.add(r.randomized_election_timeout)
        self.assertEqual(min(seen), 10)
        self.assertEqual(max(seen), 19)

    def test_one_vote_per_term(self) -> None:
        r = Raft(Config(1), MemoryStorage(ConfState((1, 2, 3))), random.Random(0))
        r.step(vote(2, 1, term=1))
        r.step(vote(3, 1, term=1))
        r.step(vote(2, 1, term=1))  # a retry from the same candidate is granted again
        resps = [(m.to, m.reject) for m in r.msgs if m.type == MT.VOTE_RESP]
        self.assertEqual(resps, [(2, False), (3, True), (2, False)])
        self.assertEqual(r.vote, 2)

    def test_vote_needs_an_up_to_date_log(self) -> None:
        st = preset_storage(ConfState((1, 2, 3)), [1, 2, 2], HardState(2, NONE, 0))
        r = Raft(Config(1), st, random.Random(0))
        r.step(vote(2, 1, term=3, index=5, log_term=1))  # older last term, longer log
        r.step(vote(3, 1, term=3, index=2, log_term=2))  # same last term, shorter log
        self.assertEqual([m.reject for m in r.msgs], [True, True])
        r.msgs.clear()
        r.step(vote(3, 1, term=3, index=3, log_term=2))  # as up to date as ours
        self.assertEqual([m.reject for m in r.msgs], [False])

    def test_stale_candidate_cannot_win(self) -> None:
        conf = ConfState((1, 2, 3))
        storages = {
            1: preset_storage(conf, [1]),
            2: preset_storage(conf, [1, 1]),
            3: preset_storage(conf, [1, 1]),
        }
        net = Net((1, 2, 3), storages=storages, pre_vote=False)
        net.campaign(1)
        self.assertNotEqual(net.nodes[1].role, Role.LEADER)
        net.campaign(2)
        self.assertEqual(net.nodes[2].role, Role.LEADER)

    def test_candidate_steps_down_on_append_of_same_term(self) -> None:
        net = Net((1, 2, 3), pre_vote=False)
        net.isolate(2)
        net.nodes[2].campaign()  # term 1, alone
        net.stabilize()
        self.assertEqual(net.nodes[2].role, Role.CANDIDATE)
        net.heal()
        net.drop(MT.VOTE, frm=1, to=2)  # 2 must learn of the leader from its appends
        net.nodes[1].campaign()  # term 1 too: 2 already voted for itself; 3 grants
        net.stabilize()
        self.assertEqual(net.nodes[1].term, 1)
        self.assertEqual(net.nodes[1].role, Role.LEADER)
        self.assertEqual(net.nodes[2].role, Role.FOLLOWER)
        self.assertEqual(net.nodes[2].leader, 1)

    def test_higher_term_deposes_leader(self) -> None:
        net = Net((1, 2, 3), pre_vote=False, check_quorum=False)
        net.campaign(1)
        net.campaign(2)
        self.assertEqual(net.nodes[2].role, Role.LEADER)
        self.assertEqual(net.nodes[1].role, Role.FOLLOWER)
        self.assertEqual(net.nodes[1].term, 2)
