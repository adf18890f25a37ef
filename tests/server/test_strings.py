"""KVCommands, INFO and CONFIG over a fake node and a task.Clock: which clock
stamps what, and how apply results become replies."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgpack
from twisted.internet import defer, task
from twisted.trial import unittest

from eraft_twisted.kv.app import KVApplication
from eraft_twisted.kv.statemachine import Op, OpError, encode_op
from eraft_twisted.kv.store import KVStore
from eraft_twisted.raft.types import ConfState, Entry, EntryType
from eraft_twisted.resp.commands import CommandError, CommandTable
from eraft_twisted.resp.encoder import SimpleString
from eraft_twisted.resp.state import ClientRegistry, ConnectionState
from eraft_twisted.rpc.codec import decode_result, encode_result
from eraft_twisted.server.admin import ConfigCommands
from eraft_twisted.server.datacmd import DataCommands
from eraft_twisted.server.info import InfoBuilder
from eraft_twisted.server.seams import NodeSettings, result_reply
from eraft_twisted.server.strings import KVCommands
from eraft_twisted.shard.statemachine import ShardedStateMachine
from eraft_twisted.storage.leveldb import LevelDBStorage

T = TypeVar("T")
CONN = ConnectionState.__new__(ConnectionState)  # the handlers here never look at it


class FakeNode:
    """A leader that applies each proposal at once, as the log would."""

    leader = 0
    is_leader = True
    term = 1

    def __init__(self, app: KVApplication, clock: task.Clock) -> None:
        self.app = app
        self.proposed: list[bytes] = []
        self.index = 0
        self.answer: object = None
        """If set, what every proposal answers instead of applying."""
        self.stats = {"proposals": 0, "reads": 0, "read_rounds": 0, "readies": 0}
        self.wall_clock = clock.seconds

    def propose(self, data: bytes) -> defer.Deferred[object]:
        self.proposed.append(data)
        if self.answer is not None:
            return defer.succeed(self.answer)
        self.index += 1
        entry = Entry(1, self.index, EntryType.NORMAL, data)
        return defer.succeed(self.app.apply_batch([entry])[0])

    propose_local = propose

    def read(self, fn: Callable[[], T]) -> defer.Deferred[T]:
        return defer.maybeDeferred(fn)


class KVCommandsTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.storage = LevelDBStorage.in_memory(ConfState((0,)))
        self.storage.persist([Entry(1, i) for i in range(1, 100)])
        self.store = KVStore(self.storage)
        self.sm = ShardedStateMachine(self.store)
        self.node = FakeNode(KVApplication(self.store, self.sm), self.clock)
        self.commands = KVCommands(self.node, self.store, self.clock, self.sm)
        self.table = CommandTable()
        self.commands.register(self.table, DataCommands(self.node, self.sm, self.clock))

    def h(self, name: str) -> Callable[[ConnectionState, list[bytes]], object]:
        """The handler registered for ``name``."""
        cmd = self.table.get(name)
        assert cmd is not None and cmd.handler is not None
        return cmd.handler

    def call(
        self, handler: Callable[[ConnectionState, list[bytes]], object], *argv: bytes
    ) -> object:
        return self.reply(handler(CONN, list(argv)))

    def reply(self, answer: object) -> object:
        if isinstance(answer, defer.Deferred):
            return self.successResultOf(answer)
        return answer

    def test_a_clock_driven_node_stamps_the_clocks_time(self) -> None:
        self.clock.advance(1234.5)
        self.assertEqual(self.commands.now_ms(), 1_234_500)
        self.assertEqual(self.call(self.h("set"), b"set", b"k", b"v"), SimpleString("OK"))
        op, stamp, *_ = msgpack.unpackb(self.node.proposed[-1])
        self.assertEqual((op, stamp), (Op.SET, 1_234_500))
        self.clock.advance(1)
        self.call(self.h("append"), b"append", b"k", b"w")
        self.assertEqual(msgpack.unpackb(self.node.proposed[-1])[1], 1_235_500)

    def test_reads_judge_expiry_by_the_logs_time_not_the_clock(self) -> None:
        self.call(self.h("set"), b"set", b"k", b"v", b"px", b"100")  # at log time 0
        self.clock.advance(3600)  # this node's clock runs far ahead of the log
        self.assertEqual(self.commands.log_time_ms(), 0)
        self.assertEqual(self.call(self.h("get"), b"get", b"k"), b"v")
        self.assertEqual(self.call(self.h("pttl"), b"pttl", b"k"), 100)
        # An entry stamped later by the leader moves the log's time: now it is gone.
        self.node.propose(encode_op(Op.TICK, 100))
        self.assertIsNone(self.call(self.h("get"), b"get", b"k"))

    def test_a_refusal_is_an_error_reply_with_its_code(self) -> None:
        self.call(self.h("set"), b"set", b"k", b"abc")
        d = self.h("decrby")(CONN, [b"decrby", b"k", b"1"])
        assert isinstance(d, defer.Deferred)
        failure = self.failureResultOf(d, CommandError)
        self.assertEqual(
            (failure.value.code, failure.value.message),
            ("ERR", "value is not an integer or out of range"),
        )
        # A write forwarded from a follower brings the error in its wire form.
        for answer in (OpError("MOVED", "12 h:1"), {"err": "MOVED 12 h:1"}):
            self.node.answer = answer
            d = self.h("set")(CONN, [b"set", b"other", b"v"])
            assert isinstance(d, defer.Deferred)
            failure = self.failureResultOf(d, CommandError)
            self.assertEqual((failure.value.code, failure.value.message), ("MOVED", "12 h:1"))

    def test_result_reply(self) -> None:
        self.assertEqual(result_reply("OK"), SimpleString("OK"))
        self.assertEqual(result_reply(b"v"), b"v")
        self.assertEqual(result_reply(3), 3)
        self.assertIsNone(result_reply(None))
        with self.assertRaises(CommandError):
            result_reply(OpError("TRYAGAIN", "later"))

    def test_the_sweeper_ticks_when_the_logs_time_lags_its_clock(self) -> None:
        self.call(self.h("set"), b"set", b"k", b"v", b"px", b"10000")
        proposed = len(self.node.proposed)
        # Nothing has expired by the leader's clock yet, but the log's time
        # is more than TICK_MS behind it: a bare time entry is proposed.
        self.successResultOf(self.commands.sweep_expired(500))
        self.assertEqual(len(self.node.proposed), proposed + 1)
        self.assertEqual(msgpack.unpackb(self.node.proposed[-1])[:2], [Op.TICK, 500])
        self.assertEqual(self.commands.log_time_ms(), 500)
        self.successResultOf(self.commands.sweep_expired(550))  # within TICK_MS: nothing
        self.assertEqual(len(self.node.proposed), proposed + 1)


class InfoAndConfigTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.storage = LevelDBStorage.in_memory(ConfState((0,)))
        self.store = KVStore(self.storage)
        self.sm = ShardedStateMachine(self.store)
        self.node = FakeNode(KVApplication(self.store, self.sm), self.clock)
        self.settings = NodeSettings("127.0.0.1:6379", "/tmp/data", "always", sharded=False)
        self.info = InfoBuilder(
            clock=self.clock,
            settings=self.settings,
            node=self.node,
            status=lambda: {},
            addresses=lambda: {},
            identity=None,
            sm=self.sm,
            store=self.store,
            storage=self.storage,
            clients=ClientRegistry(self.clock),
            migrations=lambda: {},
        )

    def fields(self, section: bytes) -> dict[str, str]:
        text = self.info.info(section, None)
        return dict(line.split(":", 1) for line in text.split("\r\n")[1:] if line)

    def test_uptime_and_clock_offset_come_from_the_injected_clock(self) -> None:
        self.clock.advance(42)
        self.assertEqual(self.fields(b"server")["uptime_in_seconds"], "42")
        self.assertEqual(self.fields(b"server")["tcp_port"], "6379")
        persistence = self.fields(b"persistence")
        self.assertEqual(persistence["log_time_ms"], "0")
        self.assertEqual(persistence["clock_ahead_of_log_time_ms"], "1042000")
        self.assertEqual(self.fields(b"clients")["connected_clients"], "0")
        self.assertEqual(self.fields(b"sharding")["shard_mode"], "single-group")
        self.assertEqual(self.info.info(b"nonesuch", None), "")

    def test_config_get_reads_the_settings(self) -> None:
        config = ConfigCommands(self.settings, lambda: {"maxclients": "7"})
        self.assertEqual(
            config.get(CONN, [b"config", b"get", b"port", b"max*", b"cluster-enabled"]),
            {
                "port": "6379",
                "maxclients": "7",
                "maxmemory": "0",
                "maxmemory-policy": "noeviction",
                "cluster-enabled": "no",
            },
        )


class ForwardedResultTests(unittest.TestCase):
    """A write forwarded by a follower gets its result back over AMP."""

    def test_a_refusal_survives_the_wire(self) -> None:
        wire = decode_result(encode_result(OpError("MOVED", "3999 127.0.0.1:7002")))
        self.assertEqual(wire, {"err": "MOVED 3999 127.0.0.1:7002"})
        with self.assertRaises(CommandError) as caught:
            result_reply(wire)
        self.assertEqual(caught.exception.reply, "MOVED 3999 127.0.0.1:7002")

    def test_plain_results_pass_through(self) -> None:
        for value in (b"v", 3, None, [b"a", 1]):
            self.assertEqual(result_reply(decode_result(encode_result(value))), value)
