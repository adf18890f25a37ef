"""Tests for RespServerProtocol over StringTransport: ordering, backpressure, errors, QUIT."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.resp.commands import CommandTable
from eraft_twisted.resp.connection import register_connection_commands
from eraft_twisted.resp.encoder import OK
from eraft_twisted.resp.protocol import RespServerFactory, RespServerProtocol
from eraft_twisted.resp.state import ConnectionState

from .helpers import multibulk


class Harness:
    """A factory whose table has GET/SET on a dict and DEFER, which parks a Deferred."""

    def make(self, max_pending: int = 1024, max_clients: int = 10_000, **limits: Any) -> None:
        self.clock = Clock()
        self.store: dict[bytes, bytes] = {}
        self.parked: list[Deferred[Any]] = []
        table = CommandTable()
        register_connection_commands(table)
        table.register("get", 2, "readonly fast", lambda c, a: self.store.get(a[1]), 1, 1, 1)
        table.register("set", 3, "write", self._set, 1, 1, 1)
        table.register("defer", -1, "", self._defer, 0, 0, 0)
        table.register("ready", 2, "", lambda c, a: succeed(a[1]), 0, 0, 0)
        table.register("boom", 1, "", self._boom, 0, 0, 0)
        table.register("weird", 1, "", lambda c, a: object(), 0, 0, 0)
        self.factory = RespServerFactory(
            table, max_pending=max_pending, clock=self.clock, max_clients=max_clients, **limits
        )

    def _set(self, conn: ConnectionState, argv: list[bytes]) -> Any:
        self.store[argv[1]] = argv[2]
        return OK

    def _defer(self, conn: ConnectionState, argv: list[bytes]) -> Any:
        d: Deferred[Any] = Deferred()
        self.parked.append(d)
        return d

    def _boom(self, conn: ConnectionState, argv: list[bytes]) -> Any:
        raise ZeroDivisionError()

    def connect(self) -> tuple[RespServerProtocol, StringTransport]:
        proto = self.factory.buildProtocol(None)
        assert isinstance(proto, RespServerProtocol)
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def take(self, transport: StringTransport) -> bytes:
        data = transport.value()
        transport.clear()
        return data


class MaxClientsTests(Harness, SynchronousTestCase):
    def test_a_client_past_the_limit_gets_one_error_and_is_closed(self) -> None:
        self.make(max_clients=2)
        first, t1 = self.connect()
        _, t2 = self.connect()
        extra, t3 = self.connect()
        self.assertEqual(self.take(t3), b"-ERR max number of clients reached\r\n")
        self.assertTrue(t3.disconnecting)
        extra.dataReceived(b"PING\r\n")  # nothing more is answered
        extra.connectionLost()
        self.assertEqual(self.take(t3), b"")
        self.assertEqual(len(self.factory.registry), 2)
        # The clients within the limit are served; once one leaves, a new one gets in.
        first.dataReceived(b"PING\r\n")
        self.assertEqual(self.take(t1), b"+PONG\r\n")
        first.connectionLost()
        again, t4 = self.connect()
        again.dataReceived(b"PING\r\n")
        self.assertEqual(self.take(t4), b"+PONG\r\n")


class ProtocolTests(Harness, SynchronousTestCase):
    def setUp(self) -> None:
        self.make()
        self.proto, self.transport = self.connect()

    def send(self, data: bytes) -> bytes:
        self.proto.dataReceived(data)
        return self.take(self.transport)

    def test_ping_inline_and_multibulk(self) -> None:
        self.assertEqual(self.send(b"PING\r\n"), b"+PONG\r\n")
        self.assertEqual(self.send(multibulk(b"PING", b"x")), b"$1\r\nx\r\n")

    def test_pipeline_is_answered_in_one_write(self) -> None:
        writes: list[bytes] = []
        self.transport.write = writes.append  # type: ignore[method-assign]
        self.proto.dataReceived(
            multibulk(b"SET", b"k", b"v") + multibulk(b"GET", b"k") + b"GET nope\r\n"
        )
        self.assertEqual(writes, [b"+OK\r\n$1\r\nv\r\n$-1\r\n"])

    def test_split_command(self) -> None:
        data = multibulk(b"SET", b"key", b"value")
        for byte in data[:-1]:
            self.assertEqual(self.send(bytes([byte])), b"")
        self.assertEqual(self.send(data[-1:]), b"+OK\r\n")

    def test_replies_stay_in_order_when_deferreds_fire_out_of_order(self) -> None:
        out = self.send(
            multibulk(b"DEFER")
            + multibulk(b"PING")
            + multibulk(b"DEFER")
            + multibulk(b"READY", b"r")
            + multibulk(b"DEFER")
        )
        self.assertEqual(out, b"")
        self.assertEqual(self.proto.pending, 5)
        first, second, third = self.parked
        third.callback(b"3")
        second.callback(b"2")
        self.assertEqual(self.take(self.transport), b"")
        first.callback(b"1")
        self.assertEqual(
            self.take(self.transport), b"$1\r\n1\r\n+PONG\r\n$1\r\n2\r\n$1\r\nr\r\n$1\r\n3\r\n"
        )
        self.assertEqual(self.proto.pending, 0)
        self.assertEqual(self.send(b"PING\r\n"), b"+PONG\r\n")

    def test_each_reply_uses_the_protocol_of_its_request(self) -> None:
        self.send(multibulk(b"DEFER") + multibulk(b"HELLO", b"3") + multibulk(b"GET", b"x"))
        self.parked[0].callback(None)
        out = self.take(self.transport)
        self.assertTrue(out.startswith(b"$-1\r\n%7\r\n"), out)
        self.assertTrue(out.endswith(b"_\r\n"), out)

    def test_protocol_error_after_earlier_replies(self) -> None:
        out = self.send(b"PING\r\n*1\r\nfoo\r\nPING\r\n")
        self.assertEqual(out, b"+PONG\r\n-ERR Protocol error: expected '$', got 'f'\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.send(b"PING\r\n"), b"")

    def test_protocol_error_waits_for_pending_replies(self) -> None:
        self.assertEqual(self.send(multibulk(b"DEFER") + b"*x\r\n"), b"")
        self.assertFalse(self.transport.disconnecting)
        self.parked[0].callback(b"late")
        self.assertEqual(
            self.take(self.transport),
            b"$4\r\nlate\r\n-ERR Protocol error: invalid multibulk length\r\n",
        )
        self.assertTrue(self.transport.disconnecting)

    def test_protocol_error_closes_only_its_connection(self) -> None:
        other, other_transport = self.connect()
        self.send(b"*1\r\n$-5\r\n")
        self.assertTrue(self.transport.disconnecting)
        other.dataReceived(b"PING\r\n")
        self.assertEqual(self.take(other_transport), b"+PONG\r\n")
        self.assertFalse(other_transport.disconnecting)

    def test_quit(self) -> None:
        self.assertEqual(self.send(b"QUIT\r\nPING\r\n"), b"+OK\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertIsNone(self.transport.producer)

    def test_quit_after_pending_reply(self) -> None:
        self.assertEqual(self.send(multibulk(b"DEFER") + b"QUIT\r\nPING\r\n"), b"")
        self.assertFalse(self.transport.disconnecting)
        self.parked[0].callback(b"v")
        self.assertEqual(self.take(self.transport), b"$1\r\nv\r\n+OK\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(len(self.parked), 1)

    def test_handler_exception_keeps_the_connection(self) -> None:
        self.assertEqual(self.send(b"BOOM\r\nPING\r\n"), b"-ERR internal error\r\n+PONG\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_unencodable_reply_is_an_internal_error(self) -> None:
        self.assertEqual(self.send(b"WEIRD\r\nPING\r\n"), b"-ERR internal error\r\n+PONG\r\n")
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)

    def test_failed_deferred_from_a_bare_protocol_use(self) -> None:
        # The table never hands out failing Deferreds, but the protocol copes anyway.
        self.send(multibulk(b"DEFER"))
        self.proto._settle(Failure(KeyError("k")), self.proto._pending[0])
        self.assertEqual(self.take(self.transport), b"-ERR internal error\r\n")
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_connection_lost_discards_pending_results(self) -> None:
        self.send(multibulk(b"DEFER") + multibulk(b"DEFER"))
        conn = self.proto.conn
        assert conn is not None
        self.proto.connectionLost(Failure(ConnectionError()))
        self.assertTrue(conn.closed)
        self.parked[0].callback(b"v")
        self.parked[1].errback(KeyError("k"))
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(list(self.factory.registry), [])

    def test_client_ids_and_registry(self) -> None:
        other, other_transport = self.connect()
        assert self.proto.conn is not None and other.conn is not None
        self.assertEqual(other.conn.id, self.proto.conn.id + 1)
        self.assertEqual(self.send(b"CLIENT ID\r\n"), b":%d\r\n" % self.proto.conn.id)
        listing = self.send(b"CLIENT LIST\r\n")
        self.assertIn(b"addr=192.168.1.1:54321 laddr=10.0.0.1:12345", listing)
        self.assertEqual(listing.count(b"\n"), 2 + 2)  # bulk header line, then two clients
        other.connectionLost(Failure(ConnectionError()))
        self.assertEqual(self.send(b"CLIENT LIST\r\n").count(b"id="), 1)

    def test_abort(self) -> None:
        self.send(multibulk(b"DEFER"))
        assert self.proto.conn is not None
        self.proto.conn.abort()
        self.assertTrue(self.transport.disconnecting)
        self.parked[0].callback(b"v")
        self.assertEqual(self.transport.value(), b"")

    def test_abort_from_a_handler_writes_nothing_more(self) -> None:
        def kill(conn: ConnectionState, argv: list[bytes]) -> Any:
            conn.abort()
            return OK

        self.factory.table.register("kill", 1, "", kill, 0, 0, 0)
        self.assertEqual(self.send(b"PING\r\nKILL\r\nPING\r\n"), b"")
        self.assertTrue(self.transport.disconnecting)

    def test_idle_time_tracks_the_clock(self) -> None:
        self.clock.advance(10)
        self.send(b"PING\r\n")
        self.clock.advance(3)
        info = self.send(b"CLIENT INFO\r\n")
        self.assertIn(b" age=13 idle=0 ", info)


class BackpressureTests(Harness, SynchronousTestCase):
    def setUp(self) -> None:
        self.make(max_pending=4)
        self.proto, self.transport = self.connect()

    def test_pauses_when_too_much_is_pending_and_resumes_below_half(self) -> None:
        calls: list[str] = []
        pause, resume = self.transport.pauseProducing, self.transport.resumeProducing

        def record_pause() -> None:
            calls.append("pause")
            pause()

        def record_resume() -> None:
            calls.append("resume")
            resume()

        self.transport.pauseProducing = record_pause  # type: ignore[method-assign]
        self.transport.resumeProducing = record_resume  # type: ignore[method-assign]
        self.proto.dataReceived(multibulk(b"DEFER") * 10 + b"PING\r\n")
        # The fifth pending command crosses the limit: reading and parsing stop.
        self.assertEqual(len(self.parked), 5)
        self.assertEqual(calls, ["pause"])
        self.proto.dataReceived(b"PING\r\n")  # already in flight: buffered, not run
        self.assertEqual(len(self.parked), 5)
        self.parked[0].callback(b"0")
        self.parked[1].callback(b"1")
        self.assertEqual(calls, ["pause"])
        # Two left pending (= half of 4): resumed, and the buffered commands run
        # until the limit is crossed again.
        self.parked[2].callback(b"2")
        self.assertEqual(calls, ["pause", "resume", "pause"])
        self.assertEqual(len(self.parked), 8)
        self.assertEqual(self.transport.producerState, "paused")
        i = 3
        while i < len(self.parked):
            self.parked[i].callback(b"%d" % i)
            i += 1
        self.assertEqual(len(self.parked), 10)
        self.assertEqual(self.transport.producerState, "producing")
        expected = b"".join(b"$1\r\n%d\r\n" % i for i in range(10)) + b"+PONG\r\n+PONG\r\n"
        self.assertEqual(self.transport.value(), expected)

    def test_full_write_buffer_stops_parsing(self) -> None:
        producer = self.transport.producer
        assert producer is not None
        self.assertTrue(self.transport.streaming)
        producer.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        self.proto.dataReceived(b"PING\r\nPING\r\n")
        self.assertEqual(self.transport.value(), b"")
        producer.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")
        self.assertEqual(self.transport.value(), b"+PONG\r\n+PONG\r\n")

    def test_both_reasons_must_clear_before_reading_resumes(self) -> None:
        self.proto.dataReceived(multibulk(b"DEFER") * 5)
        producer = self.transport.producer
        assert producer is not None
        producer.pauseProducing()
        for d in self.parked:
            d.callback(b"x")
        self.assertEqual(self.transport.producerState, "paused")
        producer.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")
