"""Client limits over StringTransport: output buffer, request size and count, idle timeout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.resp.protocol import RespServerProtocol

from .helpers import multibulk
from .test_protocol import Harness


class BufferingTransport(StringTransport):
    """Like Twisted's TCP transport: pauses its streaming producer while more
    than ``size`` bytes are unsent, resumes it once the peer has read them all."""

    def __init__(self, size: int = 1000) -> None:
        super().__init__()
        self.size = size
        self.full = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and self.streaming and len(self.value()) > self.size:
            self.full = True
            self.producer.pauseProducing()

    def read(self) -> bytes:
        """Everything unsent, as the peer reading it (the buffer drains)."""
        data = self.value()
        self.clear()
        if self.full and self.producer is not None:
            self.full = False
            self.producer.resumeProducing()
        return data


class LimitsHarness(Harness):
    def connect_buffered(self, size: int = 1000) -> tuple[RespServerProtocol, BufferingTransport]:
        proto = self.factory.buildProtocol(None)
        assert isinstance(proto, RespServerProtocol)
        transport = BufferingTransport(size)
        proto.makeConnection(transport)
        return proto, transport

    def capture_log(self) -> Callable[[], list[str]]:
        """A function giving the text of every event the resp protocol logged from now on."""
        events: list[dict[str, Any]] = []
        observer = events.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        namespace = "eraft_twisted.resp.protocol"
        return lambda: [formatEvent(e) for e in events if e.get("log_namespace") == namespace]

    def assert_served(self) -> None:
        """A new client is answered."""
        other, transport = self.connect()
        other.dataReceived(b"PING\r\n")
        self.assertEqual(transport.value(), b"+PONG\r\n")
        self.assertFalse(transport.disconnecting)


REPLY = b"$600\r\n" + b"v" * 600 + b"\r\n"
BIG = b"$5000\r\n" + b"x" * 5000 + b"\r\n"


class OutputBufferLimitTests(LimitsHarness, SynchronousTestCase):
    def setUp(self) -> None:
        self.make(output_limit=2000)
        self.store[b"big"] = b"x" * 5000
        self.logged = self.capture_log()
        self.proto, self.transport = self.connect_buffered(size=1000)

    def settle(self, i: int) -> None:
        self.parked[i].callback(b"v" * 600)

    def test_a_client_that_does_not_read_is_dropped_once_over_the_limit(self) -> None:
        self.proto.dataReceived(multibulk(b"DEFER") * 10)
        for i in range(5):
            self.settle(i)
        # The second reply filled the transport's buffer (reading paused); the
        # next three wait behind it: 1824 bytes, within the limit.
        self.assertEqual(self.transport.producerState, "paused")
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.logged(), [])
        self.settle(5)
        self.assertTrue(self.transport.disconnecting)
        self.assertIsNone(self.transport.producer)
        (line,) = self.logged()
        self.assertIn("2432 bytes of replies unread, over client-output-buffer-limit 2000", line)
        self.assertIn("addr=192.168.1.1:54321", line)
        # Nothing more is written for it, and other clients are served.
        written = self.transport.value()
        for i in range(6, 10):
            self.settle(i)
        self.assertEqual(self.transport.value(), written)
        self.assert_served()

    def test_a_client_that_reads_is_not_dropped(self) -> None:
        self.proto.dataReceived(multibulk(b"DEFER") * 10)
        received = b""
        for i in range(10):
            self.settle(i)
            received += self.transport.read()
        self.assertEqual(received, REPLY * 10)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.logged(), [])

    def test_one_reply_of_any_size_gets_through(self) -> None:
        for _ in range(3):
            self.proto.dataReceived(b"GET big\r\n")
            # Over the limit by itself, but nothing waits behind it.
            self.assertEqual(self.transport.producerState, "paused")
            self.assertFalse(self.transport.disconnecting)
            self.assertEqual(self.transport.read(), BIG)
            self.assertEqual(self.transport.producerState, "producing")

    def test_a_pipeline_answered_at_once_counts_as_a_whole(self) -> None:
        # Synchronous replies go out in one write: all but the first are a backlog.
        self.proto.dataReceived(b"GET big\r\nGET big\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(len(self.logged()), 1)
        self.assert_served()

    def test_zero_is_no_limit(self) -> None:
        self.factory.output_limit = 0
        self.proto.dataReceived(multibulk(b"DEFER") * 10 + b"GET big\r\n" * 3)
        for i in range(10):
            self.settle(i)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.transport.read(), REPLY * 10 + BIG * 3)

    def test_a_long_synchronous_pipeline_stops_at_a_full_buffer(self) -> None:
        # Backpressure still works mid-pipeline: replies go out every 64 KiB, so a
        # full transport buffer stops parsing instead of batching every reply.
        self.factory.output_limit = 0
        self.proto.dataReceived(b"GET big\r\n" * 100)
        first = self.transport.read()
        self.assertEqual(first, BIG * 14)
        received = first
        while len(received) < len(BIG) * 100:
            self.assertEqual(self.transport.producerState, "paused")
            chunk = self.transport.read()
            self.assertTrue(chunk)
            received += chunk
        self.assertEqual(received, BIG * 100)
        self.assertEqual(self.transport.producerState, "producing")


class RequestLimitTests(LimitsHarness, SynchronousTestCase):
    def setUp(self) -> None:
        self.make(max_request=1000, max_args=4)
        self.proto, self.transport = self.connect()

    def test_a_request_within_the_limits_is_served(self) -> None:
        self.proto.dataReceived(multibulk(b"SET", b"k", b"v" * 996))
        self.assertEqual(self.take(self.transport), b"+OK\r\n")

    def test_too_big_a_request_is_refused_from_its_header(self) -> None:
        self.proto.dataReceived(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$997\r\n")
        self.assertEqual(
            self.take(self.transport),
            b"-ERR Protocol error: too big request (client-query-buffer-limit is 1000 bytes)\r\n",
        )
        self.assertTrue(self.transport.disconnecting)
        # The rest of it is not buffered.
        parser = self.proto.parser
        assert parser is not None
        buffered = parser.buffered
        self.proto.dataReceived(b"v" * 997 + b"\r\n")
        self.assertEqual(parser.buffered, buffered)
        self.assertEqual(self.take(self.transport), b"")
        self.assert_served()

    def test_too_many_arguments(self) -> None:
        self.proto.dataReceived(b"*5\r\n")
        self.assertEqual(
            self.take(self.transport), b"-ERR Protocol error: invalid multibulk length\r\n"
        )
        self.assertTrue(self.transport.disconnecting)
        self.assert_served()

    def test_settings_under_redis_names(self) -> None:
        self.factory.output_limit = 123
        self.factory.idle_timeout = 30
        self.assertEqual(
            self.factory.client_settings(),
            {
                "maxclients": "10000",
                "proto-max-bulk-len": "536870912",
                "client-query-buffer-limit": "1000",
                "client-output-buffer-limit": "normal 123 0 0 slave 123 0 0 pubsub 123 0 0",
                "timeout": "30",
            },
        )


class IdleTimeoutTests(LimitsHarness, SynchronousTestCase):
    def setUp(self) -> None:
        self.make(idle_timeout=10)
        self.store[b"big"] = b"x" * 5000

    def test_an_idle_client_is_closed_and_a_busy_one_is_not(self) -> None:
        idle, idle_transport = self.connect()
        busy, busy_transport = self.connect()
        self.clock.advance(6)
        busy.dataReceived(b"PING\r\n")
        self.clock.advance(4)
        self.assertTrue(idle_transport.disconnecting)
        self.assertIsNone(idle_transport.producer)
        self.assertFalse(busy_transport.disconnecting)
        idle.dataReceived(b"PING\r\n")  # too late: not answered
        self.assertEqual(idle_transport.value(), b"")
        idle.connectionLost(Failure(ConnectionError()))
        self.clock.advance(5.9)
        self.assertFalse(busy_transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(busy_transport.disconnecting)

    def test_waiting_for_a_reply_is_not_idle(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(multibulk(b"DEFER"))
        self.clock.advance(100)
        self.assertFalse(transport.disconnecting)
        self.parked[0].callback(b"late")
        self.assertEqual(self.take(transport), b"$4\r\nlate\r\n")
        # The reply counts as activity: a full timeout from it.
        self.clock.advance(9.5)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_reading_a_reply_slowly_is_not_idle_but_not_reading_is(self) -> None:
        proto, transport = self.connect_buffered()
        proto.dataReceived(b"GET big\r\n")
        self.clock.advance(8)
        transport.read()
        self.clock.advance(8)
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"GET big\r\n")
        self.clock.advance(10)
        # Its unread reply would hold up a graceful close: aborted.
        self.assertTrue(transport.disconnecting)
        assert proto.conn is not None
        self.assertTrue(proto.conn.closed)

    def test_one_timer_per_connection_and_none_after_close(self) -> None:
        proto, transport = self.connect()
        for _ in range(100):
            proto.dataReceived(b"PING\r\n")
            self.clock.advance(1)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.assertFalse(transport.disconnecting)
        proto.connectionLost(Failure(ConnectionError()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_off_by_default(self) -> None:
        self.make()
        self.connect()
        self.assertEqual(self.clock.getDelayedCalls(), [])
