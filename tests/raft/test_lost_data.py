"""A member that lost what it acknowledged (wiped, or an old copy restored)."""

from __future__ import annotations

import copy

from twisted.trial import unittest

from eraft_twisted.raft import lostdata
from eraft_twisted.raft.core import Config
from eraft_twisted.raft.storage import MemoryStorage
from eraft_twisted.raft.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Message,
    MessageType,
    Role,
)
from eraft_twisted.testing.raftnet import Net

MT = MessageType
CONF = ConfState((1, 2, 3))


def wipe(net: Net, nid: int, storage: MemoryStorage | None = None) -> None:
    """Crash ``nid`` and start it again on an empty (or the given) storage."""
    net.crash(nid)
    net.storages[nid] = storage if storage is not None else MemoryStorage(CONF)
    net.restart(nid)


def sent_by(net: Net, nid: int, since: int) -> list[Message]:
    return [m for m in net.sent[since:] if m.frm == nid]


class DetectionTests(unittest.TestCase):
    def test_a_wiped_follower_halts_on_the_leaders_first_heartbeat(self) -> None:
        net = Net()
        net.campaign(1)
        for i in range(3):
            net.propose(1, b"x%d" % i)
        wipe(net, 3)
        mark = len(net.sent)
        net.tick(1)  # the leader's heartbeat: commit = min(3's match, committed) = 4
        halted = net.nodes[3].halted
        self.assertIn("node 3 lost raft log entries it had acknowledged", halted)
        self.assertIn("its log ends at 0 but leader 1 (term 1) counts entries up to 4", halted)
        # It answered nothing, and will not: no vote, no acknowledgement.
        net.tick(n=30)
        self.assertEqual(sent_by(net, 3, mark), [])
        self.assertEqual(net.raft(3).vote, NONE)
        net.propose(1, b"after")
        self.assertEqual(net.data(2)[-1], b"after")
        self.assertEqual(net.nodes[1].role, Role.LEADER)

    def test_an_old_copy_is_caught_by_the_rejection_of_an_append(self) -> None:
        net = Net()
        net.campaign(1)
        net.propose(1, b"a")
        backup = copy.deepcopy(net.storages[3])  # holds entries 1..2
        for i in range(3):
            net.propose(1, b"b%d" % i)  # 3 acknowledges up to 5
        net.drop(MT.HEARTBEAT)  # only the append path is left to notice
        wipe(net, 3, backup)
        mark = len(net.sent)
        net.propose(1, b"c")
        # 3 rejects the append at 5 with hint 2, below its match of 5: the
        # leader stops counting that match and tells 3 what it acknowledged.
        checks = [m for m in net.sent[mark:] if m.type == MT.ACK_CHECK]
        self.assertEqual([(m.to, m.index, m.log_term) for m in checks], [(3, 5, 1)])
        self.assertIn("its log ends at 2 but it acknowledged up to 5", net.nodes[3].halted)
        self.assertLessEqual(net.raft(1).prs[3].match, 2)

    def test_an_old_rejection_does_not_stop_a_healthy_follower(self) -> None:
        net = Net()
        net.campaign(1)
        for i in range(4):
            net.propose(1, b"x%d" % i)
        match = net.raft(1).prs[3].match
        # A rejection from long ago, overtaken by later acknowledgements.
        net.nodes[1].step(
            Message(MT.APPEND_RESP, to=1, frm=3, term=1, index=2, reject=True, reject_hint=1)
        )
        out = net.stabilize()
        self.assertEqual(net.count(out, MT.ACK_CHECK), 1)
        self.assertEqual(net.nodes[3].halted, "")
        self.assertEqual(net.raft(1).prs[3].match, match)  # acknowledged again
        net.propose(1, b"y")
        self.assertEqual(net.data(3)[-1], b"y")

    def test_heartbeats_carry_at_most_what_each_follower_acknowledged(self) -> None:
        net = Net()
        net.campaign(1)
        net.isolate(3)
        net.propose(1, b"x")
        mark = len(net.sent)
        net.tick(1)
        beats = {m.to: m.commit for m in net.sent[mark:] if m.type == MT.HEARTBEAT}
        self.assertEqual(beats, {2: 2, 3: 1})


class VoteRuleTests(unittest.TestCase):
    def committed_on_1_and_3_only(self) -> Net:
        """x at index 2 is committed by 1 and 3; 2 knows of commit 1 only."""
        net = Net()
        net.campaign(1)
        net.isolate(2)
        net.propose(1, b"x")
        self.assertEqual(net.data(1), [b"x"])
        net.crash(1)
        wipe(net, 3)
        net.heal()
        return net

    def test_an_empty_member_does_not_elect_a_candidate_that_knows_of_a_commit(self) -> None:
        net = self.committed_on_1_and_3_only()
        net.campaign(2)
        net.tick(2, n=2 * net.raft(2).cfg.election_tick)
        self.assertNotEqual(net.nodes[2].role, Role.LEADER)
        self.assertEqual(net.raft(3).vote, NONE)
        # The member holding x comes back: it is elected, and 3 gets x again.
        net.restart(1)
        net.campaign(1)
        self.assertEqual(net.nodes[1].role, Role.LEADER)
        net.propose(1, b"y")
        self.assertEqual(net.data(3), [b"x", b"y"])

    def test_the_refusal_lasts_a_bounded_number_of_election_timeouts(self) -> None:
        net = self.committed_on_1_and_3_only()
        wait = lostdata.EMPTY_VOTE_WAIT * net.raft(3).cfg.election_tick
        net.tick(3, n=wait)
        net.campaign(2)
        # Liveness over a double fault: 2 is elected, and x is gone with 1.
        self.assertEqual(net.nodes[2].role, Role.LEADER)

    def test_a_new_group_elects_a_leader_whatever_happened_before_a_commit(self) -> None:
        net = Net()
        net.isolate(3)
        net.drop(MT.APPEND_RESP)
        net.campaign(1)  # 1 leads with 2's vote; its entry reaches 2 but never commits
        self.assertEqual(net.raft(2).log.last_index(), 1)
        self.assertEqual(net.raft(2).log.committed, 0)
        net.crash(1)
        net.heal()
        net.campaign(2)  # 3 is empty, but 2 knows of no commit: 3 votes for it
        self.assertEqual(net.nodes[2].role, Role.LEADER)
        self.assertEqual(net.raft(3).vote, 2)

    def test_empty_members_elect_an_empty_candidate(self) -> None:
        net = Net()
        net.campaign(2)
        self.assertEqual(net.nodes[2].role, Role.LEADER)


class RejoinTests(unittest.TestCase):
    def test_a_wiped_member_rejoins_as_a_learner_and_is_promoted(self) -> None:
        net = Net(config=lambda nid: Config(nid, joining=nid == 3))
        net.campaign(1)
        for i in range(3):
            net.propose(1, b"x%d" % i)
        wipe(net, 3)  # started with --join: the bootstrap membership is not its own
        self.assertEqual(net.nodes[3].conf, ConfState())
        net.tick(n=3)  # the leader's view of 3 is stale: expected, not fatal
        self.assertEqual(net.nodes[3].halted, "")
        leader = net.nodes[1]
        leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE, 3))
        net.stabilize()
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 3))
        net.stabilize()
        net.tick(n=3)
        for nid in (1, 2, 3):
            self.assertEqual(net.nodes[nid].conf, CONF)
        self.assertEqual(net.data(3), [b"x0", b"x1", b"x2"])
        self.assertEqual(net.nodes[3].halted, "")
        kinds = [
            ConfChangeType(e.data[0]).name for e in net.applied[3] if e.type.name == "CONF_CHANGE"
        ]
        self.assertEqual(kinds, ["REMOVE", "ADD_LEARNER", "ADD_VOTER"])
