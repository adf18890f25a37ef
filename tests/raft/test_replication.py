"""Log replication (Raft §5.3) and the fast conflict back-off."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.raft.types import NONE, ConfState, HardState, MessageType, Role
from eraft_twisted.testing.raftnet import Net, preset_storage

MT = MessageType


class ReplicationTests(unittest.TestCase):
    def test_proposals_are_applied_everywhere_in_order(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        for i in range(10):
            net.propose(1, b"e%d" % i)
        for nid in net.ids:
            self.assertEqual(net.data(nid), [b"e%d" % i for i in range(10)])
            self.assertEqual(net.raft(nid).log.committed, 11)

    def test_batched_proposals_share_one_append(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        for i in range(50):
            net.propose(1, b"e%d" % i, stabilize=False)
        out = net.stabilize()
        appends = [m for m in out if m.type == MT.APPEND and m.entries]
        self.assertEqual([len(m.entries) for m in appends], [50, 50])
        self.assertEqual(len(net.data(3)), 50)

    def test_commit_needs_a_majority(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.isolate(1)
        index = net.propose(1, b"x")
        net.tick(1, n=3)
        self.assertLess(net.raft(1).log.committed, index)
        self.assertEqual(net.data(1), [])
        net.heal()
        net.tick(n=2)
        for nid in net.ids:
            self.assertEqual(net.data(nid), [b"x"])

    def test_one_follower_is_enough_in_three(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.crash(3)
        net.propose(1, b"x")
        self.assertEqual(net.data(1), [b"x"])
        self.assertEqual(net.data(2), [b"x"])
        net.restart(3)
        net.tick(n=2)
        self.assertEqual(net.data(3), [b"x"])

    def test_follower_conflicting_suffix_is_replaced(self) -> None:
        conf = ConfState((1, 2, 3))
        lead_terms = [1] + [3] * 5
        storages = {
            1: preset_storage(conf, lead_terms, HardState(3, NONE, 1)),
            2: preset_storage(conf, [1, 2, 2, 2, 2, 2, 2, 2, 2], HardState(3, NONE, 1)),
            3: preset_storage(conf, lead_terms, HardState(3, NONE, 1)),
        }
        net = Net((1, 2, 3), storages=storages)
        net.campaign(1)
        self.assertEqual(net.leader(), 1)
        for nid in net.ids:
            log = net.raft(nid).log
            self.assertEqual([e.term for e in log.all_entries()], lead_terms + [4])
            self.assertEqual(log.committed, 7)

    def _backoff(self, follower_terms: list[int]) -> int:
        conf = ConfState((1, 2, 3))
        lead_terms = [1] + [3] * 50
        storages = {
            1: preset_storage(conf, lead_terms, HardState(3, NONE, 1)),
            2: preset_storage(conf, follower_terms, HardState(3, NONE, 1)),
            3: preset_storage(conf, lead_terms, HardState(3, NONE, 1)),
        }
        net = Net((1, 2, 3), storages=storages, max_size_per_msg=10**6)
        out = net.campaign(1)
        self.assertEqual(net.leader(), 1)
        self.assertEqual([e.term for e in net.raft(2).log.all_entries()], lead_terms + [4])
        return sum(1 for m in out if m.type == MT.APPEND_RESP and m.frm == 2 and m.reject)

    def test_fast_backoff_over_a_long_divergent_log(self) -> None:
        # One round trip, where stepping back one index at a time would take 50.
        self.assertEqual(self._backoff([1] + [2] * 100), 1)

    def test_fast_backoff_over_a_short_log(self) -> None:
        self.assertEqual(self._backoff([1]), 1)

    def test_fast_backoff_with_several_terms(self) -> None:
        self.assertLessEqual(self._backoff([1] + [2] * 30 + [3] * 10 + [2] * 40), 2)

    def test_stale_leader_learns_the_new_term_from_a_reject(self) -> None:
        net = Net((1, 2, 3))
        net.campaign(1)
        net.isolate(1)
        net.tick(n=40)  # 2 or 3 becomes leader of term 2; 1 may still think it leads
        new = net.leader()
        self.assertIn(new, (2, 3))
        net.heal()
        net.tick(n=3)
        self.assertEqual(net.nodes[1].role, Role.FOLLOWER)
        self.assertEqual(net.nodes[1].leader, new)
