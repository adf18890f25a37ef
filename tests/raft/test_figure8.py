"""Figure 8 of the Raft paper: an entry from an earlier term is never committed
by counting replicas; only an entry of the leader's own term is (§5.4.2)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.trial import unittest

from eraft_twisted.raft.log import RaftLog
from eraft_twisted.raft.types import ConfState, HardState, Message, MessageType, Role
from eraft_twisted.testing.raftnet import Net, preset_storage

MT = MessageType
CONF = ConfState((1, 2, 3, 4, 5))


def figure8(s5_log: tuple[int, ...] = (1, 3)) -> Net:
    """The state of Figure 8 (b)->(c), with terms shifted so index 1 is term 1.

    S1 led term 2 and wrote (2, 2) only on itself; S5 led term 3 and wrote
    (2, 3) (and, with ``s5_log``, more entries of term 3) only on itself.
    S1 is about to be elected in term 4.
    """
    storages = {
        1: preset_storage(CONF, [1, 2], HardState(3, -1, 1)),
        2: preset_storage(CONF, [1], HardState(3, -1, 1)),
        3: preset_storage(CONF, [1], HardState(3, 5, 1)),
        4: preset_storage(CONF, [1], HardState(3, 5, 1)),
        5: preset_storage(CONF, list(s5_log), HardState(3, 5, 1)),
    }
    # One entry per append, so the old entry can travel without the new one.
    return Net(
        (1, 2, 3, 4, 5), storages=storages, max_size_per_msg=1, pre_vote=False, check_quorum=False
    )


def strip_term(term: int) -> Callable[[Message], bool]:
    """A network filter that removes entries of ``term`` from appends (and drops nothing)."""

    def f(m: Message) -> bool:
        if m.type == MT.APPEND:
            m.entries = tuple(e for e in m.entries if e.term != term)
        return False

    return f


class Figure8Tests(unittest.TestCase):
    def test_old_term_entry_on_a_majority_is_not_committed(self) -> None:
        net = figure8()
        net.crash(5)
        net.filters.append(strip_term(4))  # S1's own entries never leave it
        net.campaign(1)
        self.assertEqual(net.leader(), 1)
        self.assertEqual(net.nodes[1].term, 4)
        # (c): (2, 2) is now on S1, S2, S3 -- a majority of five...
        for nid in (1, 2, 3):
            self.assertEqual(net.raft(nid).log.term(2), 2)
        self.assertEqual(net.raft(1).prs[2].match, 2)
        self.assertEqual(net.raft(1).prs[3].match, 2)
        # ...yet it must not be committed: S5 could still overwrite it.
        self.assertEqual(net.raft(1).log.committed, 1)

        # (d): S1 crashes; S5 is elected with S2, S3 and S4 and overwrites index 2.
        net.crash(1)
        net.restart(5)
        net.heal()
        net.campaign(5)
        net.campaign(5)  # the first try is in term 4, where the others voted for S1
        self.assertEqual(net.leader(), 5)
        for nid in (2, 3, 4, 5):
            self.assertEqual(net.raft(nid).log.term(2), 3)
            self.assertEqual(
                [(e.index, e.term) for e in net.applied[nid]], [(1, 1), (2, 3), (3, 5)]
            )
        self.assertFalse(any(e.term == 2 for nid in net.ids for e in net.applied[nid]))

    def test_entry_of_the_current_term_commits_the_old_one(self) -> None:
        net = figure8()
        net.crash(5)
        net.campaign(1)
        # (e): S1 replicates its own term-4 entry to a majority: (2, 2) commits with it.
        self.assertEqual(net.raft(1).log.committed, 3)
        self.assertEqual([(e.index, e.term) for e in net.applied[1]], [(1, 1), (2, 2), (3, 4)])
        # S5 can no longer win: the others' logs end in term 4.
        net.crash(1)
        net.restart(5)
        for _ in range(3):
            net.campaign(5)
        self.assertNotEqual(net.nodes[5].role, Role.LEADER)

    def test_counting_old_entries_would_commit_too_early(self) -> None:
        # The same script with the §5.4.2 rule removed shows what the test guards.
        def unsafe(self: RaftLog, max_index: int, term: int) -> bool:
            if max_index > self.committed:
                self.commit_to(max_index)
                return True
            return False

        self.patch(RaftLog, "maybe_commit", unsafe)
        net = figure8()
        net.crash(5)
        net.filters.append(strip_term(4))
        net.campaign(1)
        self.assertEqual(net.raft(1).log.committed, 2)  # committed by counting: wrong

    def test_follower_commit_index_from_heartbeat_is_bounded_by_match(self) -> None:
        # S5 holds (2, 3) and (3, 3), never committed, and as long a log as
        # the leader's. Heartbeats do not check logs: had S1 sent S5 its
        # commit index (3), S5 would commit its own, divergent entries.
        net = figure8(s5_log=(1, 3, 3))
        to_s5 = net.drop(MT.APPEND, to=5)
        net.campaign(1)
        self.assertEqual(net.leader(), 1)
        self.assertEqual(net.raft(1).log.committed, 3)  # (2, 2) and (3, 4), on S1-S4
        mark = len(net.sent)
        net.tick(1, n=3)
        beats = [m for m in net.sent[mark:] if m.type == MT.HEARTBEAT and m.to == 5]
        self.assertTrue(beats)
        match = net.raft(1).prs[5].match
        self.assertTrue(all(m.commit <= match for m in beats), [m.commit for m in beats])
        s5 = net.raft(5)
        self.assertEqual((s5.leader, s5.log.committed, s5.halted), (1, 1, ""))
        self.assertEqual([(e.index, e.term) for e in net.applied[5]], [(1, 1)])
        # Once appends reach S5 its log is repaired first, then committed.
        net.filters.remove(to_s5)
        net.tick(1, n=3)
        self.assertEqual([e.term for e in s5.log.all_entries()], [1, 2, 4])
        self.assertEqual([(e.index, e.term) for e in net.applied[5]], [(1, 1), (2, 2), (3, 4)])
