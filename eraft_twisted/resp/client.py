"""A small pipelining RESP2 client on Twisted, for talking to other nodes
(the router forwarding commands, a shard group pulling a slot range).

Replies are parsed by hiredis; error replies come back as
:class:`ReplyError` failures carrying Redis's text (``MOVED 3999 h:p``).
"""

from __future__ import annotations

import typing
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from ..net import no_delay
from .encoder import NULL_ARRAY, SimpleString, Verbatim, encode

RespReply = Any
"""A decoded reply: bytes, int, None, a list of replies, a SimpleString
(status, with ``keep_status``) or, from :class:`ReplyParser`, a ReplyError.
Left dynamic: each caller knows the shape its command returns."""


class ReplyError(Exception):
    """An error reply from the server; ``str(e)`` is its text."""

    @property
    def code(self) -> str:
        return str(self).split(" ", 1)[0]


class ConnectionGone(Exception):
    """The connection closed before the reply arrived."""


class NotSent(ConnectionGone):
    """The command was certainly not sent (no connection could be had), so
    it is safe to send it elsewhere; any other failure may come after the
    server received -- and applied -- it."""


class ReplyTimeout(defer.TimeoutError):
    """A command was sent and no reply came in time (its outcome is unknown)."""


class ReplyParser:
    """Incremental RESP2 reply parser that keeps status replies apart from
    bulk strings (``+OK`` -> SimpleString), which hiredis does not; used
    where replies are passed on to another client unchanged."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def gets(self) -> RespReply:
        """The next complete reply, or Ellipsis if more data is needed."""
        start = self._pos
        try:
            value = self._parse()
        except _Incomplete:
            self._pos = start
            return Ellipsis
        return value

    def _line(self) -> bytes:
        end = self._buf.find(b"\r\n", self._pos)
        if end < 0:
            raise _Incomplete
        line = bytes(self._buf[self._pos : end])
        self._pos = end + 2
        return line

    def _parse(self) -> RespReply:
        line = self._line()
        if not line:
            raise hiredis.ProtocolError("empty reply line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return SimpleString(rest.decode("utf-8", "replace"))
        if kind == b"-":
            return ReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            if len(self._buf) < self._pos + n + 2:
                raise _Incomplete
            value = bytes(self._buf[self._pos : self._pos + n])
            self._pos += n + 2
            return value
        if kind in (b"*", b">"):
            n = int(rest)
            if n < 0:
                return NULL_ARRAY
            return [self._parse() for _ in range(n)]
        return self._parse_resp3(kind, rest)

    def _parse_resp3(self, kind: bytes, rest: bytes) -> RespReply:
        """The RESP3 types, as the encoder writes them back unchanged."""
        if kind == b"_":
            return None
        if kind == b"#":
            return rest == b"t"
        if kind == b",":
            return float(rest)
        if kind == b"(":
            return int(rest)
        if kind == b"%":
            n = int(rest)
            pairs = [(self._parse(), self._parse()) for _ in range(n)]
            try:
                return dict(pairs)  # type: ignore[arg-type]
            except TypeError:  # unhashable keys: keep the flat form
                return [x for pair in pairs for x in pair]
        if kind == b"~":
            items = [self._parse() for _ in range(int(rest))]
            try:
                return set(items)  # type: ignore[arg-type]
            except TypeError:
                return items
        if kind == b"=":
            n = int(rest)
            if len(self._buf) < self._pos + n + 2:
                raise _Incomplete
            value = bytes(self._buf[self._pos : self._pos + n])
            self._pos += n + 2
            return Verbatim(value[4:], value[:3].decode("latin-1"))
        raise hiredis.ProtocolError(f"unexpected reply type {kind!r}")


class _Incomplete(Exception):
    pass


class RespClientProtocol(Protocol):
    """Sends commands, fires their Deferreds in order as replies arrive.

    With ``keep_status`` replies go through :class:`ReplyParser` (status
    replies stay SimpleString); otherwise hiredis parses them, faster.
    """

    def __init__(self, keep_status: bool = False, protocol: int = 2) -> None:
        self.protocol = protocol
        """3: the connection speaks RESP3 (HELLO 3 first; needs keep_status)."""
        self._reader: ReplyParser | hiredis.Reader = (
            ReplyParser()
            if keep_status
            else hiredis.Reader(replyError=ReplyError, notEnoughData=Ellipsis)
        )
        self._waiting: deque[defer.Deferred[RespReply]] = deque()
        self.connected_ = False
        self.lost: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        no_delay(self.transport)
        self.connected_ = True
        if self.protocol == 3:
            self.call("HELLO", "3").addErrback(lambda f: self.close())

    def call(self, *args: bytes | str | int) -> defer.Deferred[RespReply]:
        """Send one command; fires with its reply or fails with ReplyError."""
        if not self.connected_ or self.transport is None:
            return defer.fail(NotSent("not connected"))
        argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        d: defer.Deferred[RespReply] = defer.Deferred()
        self._waiting.append(d)
        self.transport.write(encode(argv, 2))
        return d

    def dataReceived(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as e:
                self._fail_all(ConnectionGone(f"protocol error from server: {e}"))
                if self.transport is not None:
                    self.transport.loseConnection()
                return
            if reply is Ellipsis:
                return
            if not self._waiting:
                continue
            d = self._waiting.popleft()
            if isinstance(reply, ReplyError):
                d.errback(reply)
            else:
                d.callback(reply)

    def _fail_all(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, deque()
        for d in waiting:
            d.errback(error)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected_ = False
        self._fail_all(ConnectionGone(f"connection lost: {reason.getErrorMessage()}"))
        self.lost.callback(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()


class RespConnection(typing.Protocol):
    """One connection of a :class:`RespClientPool`: a
    :class:`RespClientProtocol`, or a test's stand-in."""

    connected_: bool
    lost: defer.Deferred[None]
    """Fires once the connection is closed."""

    def call(self, *args: bytes | str | int) -> defer.Deferred[RespReply]: ...

    def close(self) -> None: ...


Connector = Callable[[str], "defer.Deferred[RespConnection]"]
"""Opens a connection to ``host:port``; fails if none can be made."""


class RespClientPool:
    """One lazily opened connection per ``host:port``, reopened when lost.

    ``connect`` replaces the TCP connection (tests); ``connect_timeout``
    bounds making a TCP connection (default: ``timeout``).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        timeout: float = 5.0,
        keep_status: bool = False,
        connect: Connector | None = None,
        connect_timeout: float | None = None,
        protocol: int = 2,
    ) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.timeout = timeout
        self.keep_status = keep_status
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self._connect = connect if connect is not None else self._tcp_connect
        self._conns: dict[str, RespConnection] = {}
        self._waiters: dict[str, list[defer.Deferred[RespConnection]]] = {}

    def _tcp_connect(self, address: str) -> defer.Deferred[RespConnection]:
        host, _, port = address.rpartition(":")
        endpoint = TCP4ClientEndpoint(self.reactor, host, int(port), timeout=self.connect_timeout)
        d: defer.Deferred[RespConnection] = connectProtocol(
            endpoint, RespClientProtocol(self.keep_status, self.protocol)
        )
        return d

    def connection(self, address: str) -> defer.Deferred[RespConnection]:
        """The open connection to ``address``, or a new one once it is made
        (one attempt at a time per address); fails if none can be made."""
        conn = self._conns.get(address)
        if conn is not None and conn.connected_:
            return defer.succeed(conn)
        d: defer.Deferred[RespConnection] = defer.Deferred()
        if address in self._waiters:  # a connection attempt is under way
            self._waiters[address].append(d)
            return d
        self._waiters[address] = [d]

        def connected(proto: RespConnection) -> None:
            self._conns[address] = proto
            proto.lost.addCallback(lambda _: self._conns.pop(address, None))
            for w in self._waiters.pop(address, []):
                w.callback(proto)

        def failed(f: Failure) -> None:
            for w in self._waiters.pop(address, []):
                w.errback(f)

        self._connect(address).addCallbacks(connected, failed)
        return d

    def call(self, address: str, *args: bytes | str | int) -> defer.Deferred[RespReply]:
        """Run one command on the node at ``address``; fails with
        :class:`NotSent` if it never left this process."""
        sending = False

        def send(conn: RespConnection) -> defer.Deferred[RespReply]:
            nonlocal sending
            sending = True
            return conn.call(*args)

        def not_sent(f: Failure) -> Failure:
            timed_out = f.check(defer.TimeoutError)
            why = f"no answer within {self.timeout:g}s" if timed_out else f.getErrorMessage()
            if not sending and not f.check(NotSent):
                raise NotSent(f"cannot connect to {address}: {why}")
            if timed_out:
                raise ReplyTimeout(f"no reply from {address} within {self.timeout:g}s")
            return f

        d = self.connection(address).addCallback(send)
        return d.addTimeout(self.timeout, self.reactor).addErrback(not_sent)

    def close(self) -> None:
        """Close every open connection."""
        for conn in list(self._conns.values()):
            conn.close()
        self._conns.clear()


def parse_info(text: bytes | str) -> dict[str, str]:
    """``key:value`` lines of an INFO / RAFT.INFO reply."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k.strip()] = v.strip()
    return out
