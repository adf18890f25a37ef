"""The RESP client against our own RESP server (real sockets on 127.0.0.1)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from eraft_twisted.resp.client import (
    ConnectionGone,
    NotSent,
    ReplyError,
    ReplyTimeout,
    RespClientPool,
)
from eraft_twisted.resp.commands import CommandError, CommandTable
from eraft_twisted.resp.connection import register_connection_commands
from eraft_twisted.resp.encoder import NULL_ARRAY
from eraft_twisted.resp.protocol import RespServerFactory


class ClientTests(unittest.TestCase):
    def setUp(self) -> None:
        data: dict[bytes, bytes] = {}
        table = CommandTable()
        register_connection_commands(table)

        def set_(conn: Any, argv: list[bytes]) -> str:
            data[argv[1]] = argv[2]
            return "OK"

        def get(conn: Any, argv: list[bytes]) -> Any:
            if argv[1] == b"moved":
                raise CommandError("3999 127.0.0.1:1", code="MOVED")
            if argv[1] == b"slow":
                return task.deferLater(reactor, 0.5, lambda: b"late")
            d: defer.Deferred[Any] = defer.Deferred()
            reactor.callLater(0.01, d.callback, data.get(argv[1]))  # type: ignore[attr-defined]
            return d

        table.register("set", 3, "write", set_)
        table.register("get", 2, "readonly", get)
        self.port = reactor.listenTCP(0, RespServerFactory(table), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addr = f"127.0.0.1:{self.port.getHost().port}"
        self.pool = RespClientPool(reactor, timeout=5)

    @defer.inlineCallbacks
    def tearDown(self) -> Any:
        self.pool.close()
        yield self.port.stopListening()

    @defer.inlineCallbacks
    def test_pipelined_calls_share_one_connection(self) -> Any:
        results = yield defer.gatherResults(
            [self.pool.call(self.addr, "SET", f"k{i}", i) for i in range(50)]
            + [self.pool.call(self.addr, "GET", "k7"), self.pool.call(self.addr, "GET", "none")]
        )
        self.assertEqual(results[-2:], [b"7", None])
        self.assertEqual(len(self.pool._conns), 1)

    @defer.inlineCallbacks
    def test_error_reply(self) -> Any:
        try:
            yield self.pool.call(self.addr, "GET", "moved")
        except ReplyError as e:
            self.assertEqual(e.code, "MOVED")
            self.assertEqual(str(e), "MOVED 3999 127.0.0.1:1")
        else:
            self.fail("no error")

    @defer.inlineCallbacks
    def test_refused(self) -> Any:
        port = self.port.getHost().port
        yield self.port.stopListening()
        self.port = reactor.listenTCP(0, RespServerFactory(CommandTable()), interface="127.0.0.1")  # type: ignore[attr-defined]
        with self.assertRaises(NotSent) as refused:
            yield self.pool.call(f"127.0.0.1:{port}", "PING")
        self.assertIn("refused", str(refused.exception))

    @defer.inlineCallbacks
    def test_connection_lost_fails_waiting_calls(self) -> Any:
        yield self.pool.call(self.addr, "SET", "a", "1")
        d = self.pool.call(self.addr, "GET", "a")
        self.pool.close()
        with self.assertRaises(ConnectionGone):
            yield d
        # Let the server's delayed reply fire before the reactor is checked.
        yield task.deferLater(reactor, 0.05, lambda: None)

    @defer.inlineCallbacks
    def test_a_reply_that_does_not_come_in_time(self) -> Any:
        pool = RespClientPool(reactor, timeout=0.1)
        self.addCleanup(pool.close)
        with self.assertRaises(ReplyTimeout) as late:
            yield pool.call(self.addr, "GET", "slow")
        self.assertNotIsInstance(late.exception, NotSent)  # it was sent: outcome unknown
        self.assertEqual(str(late.exception), f"no reply from {self.addr} within 0.1s")
        yield task.deferLater(reactor, 0.5, lambda: None)


class ReplyParserTests(unittest.TestCase):
    def test_every_reply_type_split_anywhere(self) -> None:
        from eraft_twisted.resp.client import ReplyParser
        from eraft_twisted.resp.encoder import SimpleString

        wire = b"+OK\r\n-ERR no\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\nx\r\n*1\r\n:1\r\n*-1\r\n"
        for cut in range(len(wire) + 1):
            p = ReplyParser()
            out: list[object] = []
            for part in (wire[:cut], wire[cut:]):
                p.feed(part)
                while (r := p.gets()) is not Ellipsis:
                    out.append(r)
            self.assertEqual(len(out), 7, cut)
            self.assertIsInstance(out[0], SimpleString)
            self.assertEqual(out[0], "OK")
            self.assertIsInstance(out[1], ReplyError)
            self.assertEqual(out[2:], [42, b"abc", None, [b"x", [1]], NULL_ARRAY])

    def test_resp3_replies_keep_their_types(self) -> None:
        from eraft_twisted.resp.client import ReplyParser
        from eraft_twisted.resp.encoder import Verbatim, encode

        values: list[object] = [
            {b"f": b"v", b"g": 2},
            {b"a", b"b"},
            1.5,
            None,
            True,
            Verbatim(b"text"),
            NULL_ARRAY,
        ]
        p = ReplyParser()
        p.feed(b"".join(encode(v, 3) for v in values))
        self.assertEqual([p.gets() for _ in values], [*values[:6], None])
