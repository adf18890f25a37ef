"""ShardDriver against a fake source group: a dead member never stalls a move."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import msgpack
from twisted.internet import defer, task
from twisted.internet.error import ConnectionRefusedError
from twisted.trial import unittest

from eraft_twisted.kv.statemachine import Op, pack_record
from eraft_twisted.kv.store import KVStore
from eraft_twisted.raft.types import ConfState
from eraft_twisted.shard.migration import PULL_RETRIES, PULL_RETRY_DELAY, ShardDriver
from eraft_twisted.shard.state import ShardState
from eraft_twisted.shard.statemachine import ShardedStateMachine
from eraft_twisted.storage.layout import data_key
from eraft_twisted.storage.leveldb import LevelDBStorage

A, B = 1, 2
K1, K2 = data_key(b"{a}k1"), data_key(b"{a}k2")
"""DB keys (RAW pulls) of two keys in group B's slots."""
R1, R2 = pack_record(b"v1", 0), pack_record(b"v2", 0)
DEAD, LIVE = "127.0.0.1:7001", "127.0.0.1:7002"
SERVERS = {str(A): [DEAD, LIVE], str(B): ["127.0.0.1:7003"]}
ALL_A = {"num": 1, "groups": SERVERS, "ranges": [(0, 16383, A)]}
SPLIT = {"num": 2, "groups": SERVERS, "ranges": [(0, 8191, A), (8192, 16383, B)]}


class FakePool:
    """Answers ERAFT.MIGRATE.* like a source group whose first member is down."""

    def __init__(self, reactor: task.Clock, down: set[str]) -> None:
        self.reactor = reactor
        self.down = down
        self.calls: list[tuple[str, str]] = []

    def call(self, address: str, *args: Any) -> defer.Deferred[Any]:
        self.calls.append((address, args[0]))
        if address in self.down:
            return defer.fail(ConnectionRefusedError(address))
        if args[0] == "ERAFT.MIGRATE.PULL":
            cursor = args[4]
            if cursor == b"":
                return defer.succeed([K1, [K1, R1]])
            if cursor == K1:
                return defer.succeed([b"", [K2, R2]])
            return defer.succeed([b"", []])
        return defer.succeed(b"OK")


class FakeNode:
    """A leader whose proposals apply at once to a real state machine."""

    is_leader = True
    term = 1

    def __init__(self, shards: ShardState) -> None:
        self.proposed: list[list[Any]] = []
        self.store = KVStore(LevelDBStorage.in_memory(ConfState((0,))), None)
        self.sm = ShardedStateMachine(self.store)
        self.sm.shards = shards

    def propose_local(self, data: bytes) -> defer.Deferred[Any]:
        self.proposed.append(msgpack.unpackb(data))
        result, writes = self.sm.apply(data)
        self.store.stage(writes)
        return defer.succeed(result)


class ShardDriverTests(unittest.TestCase):
    def setUp(self) -> None:
        shards = ShardState()
        shards.apply_config(B, ALL_A)
        shards.apply_config(B, SPLIT)
        self.clock = task.Clock()
        self.pool = FakePool(self.clock, {DEAD})
        self.node = FakeNode(shards)
        self.driver = ShardDriver(
            node=self.node,
            sm=self.node.sm,
            group=B,
            meta=SimpleNamespace(),
            pool=self.pool,  # type: ignore[arg-type]
            servers=lambda: None,
            now_ms=lambda: 0,
        )

    def ops(self) -> list[Op]:
        return [Op(p[0]) for p in self.node.proposed]

    def test_pull_skips_a_dead_source_member_and_remembers_the_live_one(self) -> None:
        d = self.driver._pull(2, 8192, 16383, A, 1)
        self.successResultOf(d)
        self.assertEqual(self.ops(), [Op.INSTALL_ROWS, Op.INSTALL_ROWS, Op.INSTALL_DONE])
        first, second = self.node.proposed[0], self.node.proposed[1]
        self.assertEqual((first[5], first[6]), (None, [K1, R1]))
        self.assertEqual((second[5], second[6]), (K1, [K2, R2]))
        # The dead member is tried once; the next chunk goes straight to the live one.
        self.assertEqual([a for a, _ in self.pool.calls], [DEAD, LIVE, LIVE])

    def test_release_reaches_a_live_member_when_the_first_is_dead(self) -> None:
        self.successResultOf(self.driver._release(2, 8192, 16383, A, 1))
        self.assertEqual(
            self.pool.calls, [(DEAD, "ERAFT.MIGRATE.RELEASE"), (LIVE, "ERAFT.MIGRATE.RELEASE")]
        )
        self.assertEqual(self.ops(), [Op.NOTIFIED])

    def test_pull_waits_out_a_source_group_that_is_briefly_all_down(self) -> None:
        self.pool.down = {DEAD, LIVE}
        d = self.driver._pull(2, 8192, 16383, A, 1)
        self.assertNoResult(d)
        self.clock.advance(PULL_RETRY_DELAY)
        self.pool.down = {DEAD}
        self.clock.advance(PULL_RETRY_DELAY)
        self.successResultOf(d)
        self.assertEqual(self.ops(), [Op.INSTALL_ROWS, Op.INSTALL_ROWS, Op.INSTALL_DONE])

    def test_pull_gives_up_after_its_retries_and_installs_nothing(self) -> None:
        self.pool.down = {DEAD, LIVE}
        d = self.driver._pull(2, 8192, 16383, A, 1)
        for _ in range(PULL_RETRIES):
            self.clock.advance(PULL_RETRY_DELAY)
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(self.ops(), [])

    def test_a_pull_started_in_an_older_term_proposes_nothing_more(self) -> None:
        # Leader in term 1 installs the first chunk; while it waits for the
        # second, it loses leadership and wins it back in term 3.
        second: defer.Deferred[Any] = defer.Deferred()
        real_call = self.pool.call

        def call(address: str, *args: Any) -> defer.Deferred[Any]:
            if args[0] == "ERAFT.MIGRATE.PULL" and args[4] != b"":
                self.pool.calls.append((address, args[0]))
                return second
            return real_call(address, *args)

        self.pool.call = call  # type: ignore[method-assign]
        self.driver.step()
        self.assertEqual(self.ops(), [Op.INSTALL_ROWS])
        self.node.term = 3
        second.callback([b"", [K2, R2]])
        # The old step stops: no second chunk, no "done" from term 1's pull.
        self.assertEqual(self.ops(), [Op.INSTALL_ROWS])
        # The next step resumes from the replicated copy position.
        self.pool.call = real_call  # type: ignore[method-assign]
        self.driver.step()
        self.assertEqual(
            self.ops(), [Op.INSTALL_ROWS, Op.INSTALL_ROWS, Op.INSTALL_DONE, Op.NOTIFIED]
        )
        self.assertEqual(self.node.proposed[1][5], K1)  # after the first chunk's last key
        self.assertEqual(self.node.store.get_record(b"{a}k1"), R1)
        self.assertEqual(self.node.store.get_record(b"{a}k2"), R2)
        self.assertEqual(self.node.sm.shards.incoming, {})

    def test_a_chunk_that_does_not_follow_the_copy_position_changes_nothing(self) -> None:
        sm = self.node.sm
        a, b = data_key(b"a"), data_key(b"{a}b")
        first = self.driver._propose(1, Op.INSTALL_ROWS, 2, 8192, 16383, None, [a, b"x" * 9])
        self.assertEqual(self.successResultOf(first), 1)
        self.assertEqual(sm.shards.copy_position(2, 8192, 16383), a)
        # A deposed leader's late chunks: another first chunk, or one from an old position.
        for after in (None, b"zzz"):
            late = self.driver._propose(1, Op.INSTALL_ROWS, 2, 8192, 16383, after, [b, b"y" * 9])
            self.assertEqual(self.successResultOf(late), -1)
        self.assertIsNotNone(self.node.store.get_record(b"a"))
        self.assertIsNone(self.node.store.get_record(b"{a}b"))
        self.assertEqual(sm.shards.copy_position(2, 8192, 16383), a)
        # The position is replicated state: it survives a restart.
        again = ShardState.from_dict(msgpack.unpackb(msgpack.packb(sm.shards.to_dict())))
        self.assertEqual(again, sm.shards)

    def test_a_release_confirmed_after_a_term_change_is_not_recorded(self) -> None:
        answer: defer.Deferred[Any] = defer.Deferred()
        self.pool.call = lambda address, *args: answer  # type: ignore[method-assign]
        d = self.driver._release(2, 8192, 16383, A, 1)
        self.node.term = 2
        answer.callback(b"OK")
        self.failureResultOf(d)
        self.assertEqual(self.ops(), [])
