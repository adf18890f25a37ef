"""RaftNode driven by task.Clock over an in-process network (deterministic)."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from eraft_twisted.kv.app import KVApplication
from eraft_twisted.kv.statemachine import OK, Op, encode_op
from eraft_twisted.kv.store import KVStore
from eraft_twisted.node.driver import RaftNode
from eraft_twisted.node.errors import RaftTimeout, RaftUnavailable
from eraft_twisted.raft.core import Config
from eraft_twisted.raft.types import NONE, ConfChangeType, ConfState, Message, Role
from eraft_twisted.rpc.codec import decode_result, encode_result
from eraft_twisted.rpc.commands import LeaderUnreachable, SnapshotChunk, SnapshotEnd, SnapshotOpen
from eraft_twisted.storage.leveldb import LevelDBStorage


class FakeNetwork:
    """Delivers messages between nodes on the next clock turn; can cut links."""

    def __init__(self, clock: task.Clock) -> None:
        self.clock = clock
        self.nodes: dict[int, RaftNode] = {}
        self.cut: set[int] = set()
        self.deaf: set[int] = set()
        """Nodes that receive nothing (but still send)."""
        self.raft_messages = 0

    def transport_for(self, nid: int) -> Any:
        net = self

        class Transport:
            def send(self, msgs: list[Message]) -> None:
                for m in msgs:
                    net.raft_messages += 1
                    if nid in net.cut or m.to in net.cut or m.to in net.deaf:
                        continue
                    net.clock.callLater(0.001, net.nodes[m.to].receive_messages, [m])

            def forward_propose(self, to: int, data: bytes) -> defer.Deferred[bytes]:
                if nid in net.cut or to in net.cut:
                    return defer.fail(RaftUnavailable("cut"))
                return net.nodes[to].propose_forwarded(data)

            def call(self, to: int, command: Any, **kw: Any) -> defer.Deferred[Any]:
                if nid in net.cut or to in net.cut:
                    return defer.fail(ConnectionError("cut"))
                node = net.nodes[to]
                if command is SnapshotOpen:
                    d = node.snapshot_open(kw["sender"], kw["term"], kw["meta"])
                    return d.addCallback(lambda stream: {"stream": stream})
                if command is SnapshotChunk:
                    return node.snapshot_chunk(kw["stream"], kw["items"])
                if command is SnapshotEnd:
                    return node.snapshot_end(kw["stream"])
                raise NotImplementedError(command)

            def add_peer(self, nid: int, address: str) -> None:
                pass

            def remove_peer(self, nid: int) -> None:
                pass

        return Transport()


def kv_node(nid: int, storage: Any, net: FakeNetwork, rng: random.Random) -> RaftNode:
    """A KV node on ``storage``, joined to ``net`` (not started)."""
    node = RaftNode(
        nid,
        storage,
        KVApplication(KVStore(storage, None)),
        net.clock,
        config=Config(nid, election_tick=10),
        tick_interval=0.1,
        request_timeout=3.0,
        rng=rng,
    )
    node.transport = net.transport_for(nid)
    net.nodes[nid] = node
    return node


class KVGroupCase(unittest.TestCase):
    """Three KV nodes on in-memory storage over a :class:`FakeNetwork`,
    all driven by one ``task.Clock``; ``configure`` sees each node before
    it starts."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.net = FakeNetwork(self.clock)
        self.stores: dict[int, KVStore] = {}
        for nid in range(3):
            storage = LevelDBStorage.in_memory(ConfState((0, 1, 2)))
            node = kv_node(nid, storage, self.net, random.Random(nid))
            self.stores[nid] = node.app.store  # type: ignore[attr-defined]
            self.configure(node)
            node.startService()
        self.addCleanup(lambda: [n.stopService() for n in self.net.nodes.values()])

    def configure(self, node: RaftNode) -> None:
        pass

    def run_for(self, seconds: float, step: float = 0.01) -> None:
        for _ in range(int(seconds / step)):
            self.clock.advance(step)

    def leader(self) -> RaftNode:
        self.run_for(3)
        leaders = [n for n in self.net.nodes.values() if n.raw and n.raw.role == Role.LEADER]
        self.assertEqual(len(leaders), 1)
        return leaders[0]


class DriverTests(KVGroupCase):
    def test_write_on_follower_is_forwarded_and_applied_everywhere(self) -> None:
        leader = self.leader()
        follower = next(n for n in self.net.nodes.values() if n is not leader)
        d = follower.propose(encode_op(Op.SET, 0, b"k", b"v", 0, 0, False))
        self.run_for(0.5)
        self.assertEqual(self.successResultOf(d), OK)
        for store in self.stores.values():
            self.assertEqual(store.get(b"k", 0), b"v")

    def test_reads_share_read_index_rounds_and_write_no_log(self) -> None:
        leader = self.leader()
        follower = next(n for n in self.net.nodes.values() if n is not leader)
        self.successResultOf_after(follower.propose(encode_op(Op.SET, 0, b"k", b"v", 0, 0, False)))
        last = leader.raw.raft.log.last_index()
        reads = [
            n.read(lambda s=self.stores[n.node_id]: s.get(b"k", 0))
            for n in self.net.nodes.values()
            for _ in range(20)
        ]
        self.run_for(0.5)
        self.assertEqual([self.successResultOf(d) for d in reads], [b"v"] * 60)
        self.assertEqual(leader.raw.raft.log.last_index(), last)
        self.assertLessEqual(sum(n.stats["read_rounds"] for n in self.net.nodes.values()), 6)

    def successResultOf_after(self, d: defer.Deferred[Any]) -> Any:
        self.run_for(0.5)
        return self.successResultOf(d)

    def test_isolated_leader_times_out_writes_and_reads(self) -> None:
        leader = self.leader()
        self.net.cut = {n for n in self.net.nodes if n != leader.node_id}
        w = leader.propose(encode_op(Op.SET, 0, b"x", b"1", 0, 0, False))
        r = leader.read(lambda: b"stale?")
        self.run_for(4)
        self.failureResultOf(w, RaftTimeout)
        self.failureResultOf(r, RaftTimeout)

    def test_forwarded_result_round_trips(self) -> None:
        leader = self.leader()
        d = leader.propose_forwarded(encode_op(Op.INCRBY, 0, b"n", 41))
        self.run_for(0.5)
        self.assertEqual(decode_result(self.successResultOf(d)), 41)
        self.assertEqual(decode_result(encode_result({"err": "x"})), {"err": "x"})

    def test_an_ambiguous_forward_is_not_retried(self) -> None:
        leader = self.leader()
        follower = next(n for n in self.net.nodes.values() if n is not leader)

        def lossy_forward(to: int, data: bytes) -> defer.Deferred[bytes]:
            # The leader gets the write, but the answer is lost on the way back.
            self.net.nodes[to].propose_forwarded(data)
            return defer.fail(ConnectionError("connection lost"))

        follower.transport.forward_propose = lossy_forward  # type: ignore[union-attr, method-assign]
        d = follower.propose(encode_op(Op.INCRBY, 0, b"n", 1))
        self.run_for(1)
        f = self.failureResultOf(d, RaftTimeout)
        self.assertIn("may or may not have been applied", str(f.value))
        # Applied exactly once, never twice.
        self.assertEqual(self.stores[leader.node_id].get(b"n", 0), b"1")

    def test_a_refused_forward_is_retried(self) -> None:
        leader = self.leader()
        follower = next(n for n in self.net.nodes.values() if n is not leader)
        transport = follower.transport
        real = transport.forward_propose  # type: ignore[union-attr]
        calls = []

        def refuse_once(to: int, data: bytes) -> defer.Deferred[bytes]:
            calls.append(to)
            if len(calls) == 1:
                return defer.fail(LeaderUnreachable("no link yet"))
            return real(to, data)

        transport.forward_propose = refuse_once  # type: ignore[union-attr, method-assign]
        d = follower.propose(encode_op(Op.INCRBY, 0, b"m", 5))
        self.run_for(1)
        self.assertEqual(self.successResultOf(d), 5)
        self.assertEqual(len(calls), 2)

    def test_admin_requests_on_a_node_that_knows_no_leader_wait_for_one(self) -> None:
        # Before the first election nobody knows a leader: a transfer asked
        # of any node goes through once there is one, instead of failing.
        def call(to: int, command: Any, target: int) -> Any:
            d = self.net.nodes[to].transfer_leadership(target)
            return d.addCallback(lambda leader: {"leader": leader})

        for n in self.net.nodes.values():
            n.transport.call = call  # type: ignore[union-attr]
        asked = self.net.nodes[2]
        self.assertEqual(asked.leader, NONE)
        d = asked.transfer_leadership(2)
        self.assertNoResult(d)
        self.run_for(6)
        self.assertEqual(self.successResultOf(d), 2)
        self.assertTrue(asked.is_leader)

    def test_waiting_for_a_leader_is_bounded_by_the_request_timeout(self) -> None:
        self.net.cut = set(self.net.nodes)  # no election can succeed
        d = self.net.nodes[1].change_membership(int(ConfChangeType.REMOVE), 2, "")
        self.run_for(3.5)
        self.failureResultOf(d, RaftTimeout)

    # -- outcomes: "not applied" only for what was never appended -----------
    def test_shutdown_reports_appended_writes_as_unknown(self) -> None:
        leader = self.leader()
        self.net.cut = {n for n in self.net.nodes if n != leader.node_id}
        d = leader.propose(encode_op(Op.INCRBY, 0, b"n", 1))  # appended, not committed
        self.run_for(0.2)
        leader.stopService()
        f = self.failureResultOf(d, RaftTimeout)
        self.assertIn("may have been applied", str(f.value))

    def test_shutdown_fails_a_write_never_appended_as_unavailable(self) -> None:
        self.net.cut = set(self.net.nodes)  # no leader: nothing can be appended
        d = self.net.nodes[1].propose(encode_op(Op.INCRBY, 0, b"n", 1))
        self.run_for(0.5)
        self.net.nodes[1].stopService()
        self.run_for(0.2)
        f = self.failureResultOf(d, RaftUnavailable)
        self.assertNotIsInstance(f.value, RaftTimeout)

    def deposed_leader_with_a_committed_proposal(
        self, forwarded: bool = False
    ) -> tuple[RaftNode, Any]:
        """A leader appends a write (its own, or one a follower forwarded) and
        replicates it, but hears no answer; it is cut off, the others elect a
        leader that commits the write and compacts its log past it; then the
        old leader is let back in. Returns (old leader, the client's Deferred)."""
        old = self.leader()
        for n in self.net.nodes.values():
            n.request_timeout = 60.0  # the outcome must come from Raft, not a timeout
        via = next(n for n in self.net.nodes.values() if n is not old) if forwarded else old
        self.net.deaf = {old.node_id}
        d = via.propose(encode_op(Op.INCRBY, 0, b"n", 1))
        self.run_for(0.1)
        self.net.deaf = set()
        self.net.cut = {old.node_id}
        self.run_for(4)
        new = next(n for n in self.net.nodes.values() if n.is_leader and n is not old)
        for i in range(5):
            self.successResultOf_after(
                new.propose(encode_op(Op.SET, 0, b"k%d" % i, b"v", 0, 0, False))
            )
        self.assertEqual(self.stores[new.node_id].get(b"n", 0), b"1")
        self.successResultOf_after(new.compact(keep=0))
        self.assertGreater(new.storage.first_index(), old.storage.last_index())
        self.assertNoResult(d)
        self.net.cut = set()
        self.run_for(3)
        self.assertEqual(old.snapshot_receiver.received, 1)
        # Traffic goes on, so the old leader applies entries past its proposal.
        self.successResultOf_after(new.propose(encode_op(Op.SET, 0, b"after", b"v", 0, 0, False)))
        return old, d

    def test_a_proposal_covered_by_an_installed_snapshot_is_unknown_not_lost(self) -> None:
        old, d = self.deposed_leader_with_a_committed_proposal()
        # The write did apply (through the snapshot): "not applied" would be a lie.
        f = self.failureResultOf(d, RaftTimeout)
        self.assertIn("may have been applied", str(f.value))
        self.assertEqual(self.stores[old.node_id].get(b"n", 0), b"1")

    def test_a_forwarded_write_covered_by_a_snapshot_is_not_sent_again(self) -> None:
        _, d = self.deposed_leader_with_a_committed_proposal(forwarded=True)
        self.run_for(2)
        f = self.failureResultOf(d, RaftTimeout)
        self.assertIn("may", str(f.value))
        for store in self.stores.values():
            self.assertEqual(store.get(b"n", 0), b"1")  # applied once, never twice
