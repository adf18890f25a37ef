"""What a leader may send before its own writes are durable (§10.2.1)."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from eraft_twisted.node.driver import RaftNode
from eraft_twisted.raft.core import Config
from eraft_twisted.raft.types import ConfState, HardState, Message, MessageType, Role
from eraft_twisted.storage.leveldb import LevelDBStorage
from tests.node.test_driver import FakeNetwork
from tests.node.test_fail_stop import App

MT = MessageType


class Durable:
    """What is on disk at each moment, and every message sent meanwhile."""

    def __init__(self) -> None:
        self.term = 0
        self.vote = -1
        self.last = 0
        self.sends: list[tuple[Message, int, int, int]] = []

    def persisted(self, entries: list[Any], hs: HardState | None) -> None:
        if entries:
            self.last = entries[-1].index
        if hs is not None:
            self.term, self.vote = hs.term, hs.vote

    def sent(self, m: Message) -> None:
        self.sends.append((m, self.term, self.vote, self.last))


class RecordingStorage(LevelDBStorage):
    """Tells ``durable`` when each write is done; can hold writes back."""

    durable: Durable
    held: list[defer.Deferred[None]] | None = None

    def persist(self, entries: Any = (), hard_state: Any = None, sync: bool = True) -> Any:
        ents = list(entries)
        d = super().persist(ents, hard_state, sync)
        if self.held is not None:
            gate: defer.Deferred[None] = defer.Deferred()
            self.held.append(gate)
            d.addCallback(lambda _: gate)

        def done(result: Any) -> Any:
            self.durable.persisted(ents, hard_state)
            return result

        return d.addCallback(done)


class RecordingTransport:
    def __init__(self, durable: Durable) -> None:
        self.durable = durable

    def send(self, msgs: list[Message]) -> None:
        for m in msgs:
            self.durable.sent(m)


class LoneVoterTests(unittest.TestCase):
    """A one-voter group with a learner: the grow-from-one path."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.durable = Durable()
        storage = RecordingStorage.in_memory(ConfState((0,), (1,)))
        storage.durable = self.durable
        self.node = RaftNode(0, storage, App(), self.clock, config=Config(0), rng=random.Random(0))
        self.node.transport = RecordingTransport(self.durable)  # type: ignore[assignment]
        self.node.startService()
        self.addCleanup(self.node.stopService)

    def run_for(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.01)):
            self.clock.advance(0.01)

    def test_nothing_of_a_new_term_goes_out_before_the_term_and_vote_are_durable(self) -> None:
        raw = self.node.raw
        tick = raw.tick

        def tick_then_write() -> None:
            was_leader = raw.role == Role.LEADER
            tick()
            if raw.role == Role.LEADER and not was_leader:
                # A client write in the same reactor turn as the election:
                # the Ready that holds the new term also holds its appends.
                self.first = self.node.propose(b"first")

        raw.tick = tick_then_write  # type: ignore[method-assign]
        self.run_for(3)
        self.assertEqual(raw.role, Role.LEADER)
        self.assertEqual(self.successResultOf(self.first), b"first")
        self.assertTrue(self.durable.sends)
        for m, term, vote, _ in self.durable.sends:
            self.assertEqual((term, vote), (m.term, 0), m)

    def test_no_commit_index_goes_out_ahead_of_the_entries_it_covers(self) -> None:
        self.run_for(3)
        for i in range(5):
            d = self.node.propose(b"x%d" % i)
            self.run_for(0.05)
            self.assertEqual(self.successResultOf(d), b"x%d" % i)
        appends = [s for s in self.durable.sends if s[0].type in (MT.APPEND, MT.HEARTBEAT)]
        self.assertGreater(len(appends), 5)
        for m, _, _, last in appends:
            self.assertLessEqual(m.commit, last, m)


class ParallelSendTests(unittest.TestCase):
    def test_a_leader_of_three_still_sends_plain_appends_while_it_writes(self) -> None:
        clock = task.Clock()
        net = FakeNetwork(clock)
        durable = {nid: Durable() for nid in range(3)}
        for nid in range(3):
            storage = RecordingStorage.in_memory(ConfState((0, 1, 2)))
            storage.durable = durable[nid]
            node = RaftNode(nid, storage, App(), clock, config=Config(nid), rng=random.Random(nid))
            inner = net.transport_for(nid)
            recorder = RecordingTransport(durable[nid])

            def send(msgs: list[Message], orig: Any = inner.send, rec: Any = recorder) -> None:
                rec.send(msgs)
                orig(msgs)

            inner.send = send
            node.transport = inner
            net.nodes[nid] = node
            node.startService()
            self.addCleanup(node.stopService)
        for _ in range(300):
            clock.advance(0.01)
        leader = next(n for n in net.nodes.values() if n.is_leader)
        leader.storage.held = []
        index = leader.raw.raft.log.last_index() + 1
        d = leader.propose(b"y")
        clock.advance(0)
        sent = [
            m
            for m, _, _, last in durable[leader.node_id].sends
            if m.type == MT.APPEND and any(e.index == index for e in m.entries)
        ]
        self.assertEqual(len(sent), 2)  # to both followers...
        self.assertLess(durable[leader.node_id].last, index)  # ...before its own write
        held, leader.storage.held = leader.storage.held, None
        for gate in held:
            gate.callback(None)
        for _ in range(50):
            clock.advance(0.01)
        self.assertEqual(self.successResultOf(d), b"y")
