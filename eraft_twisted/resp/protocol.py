"""The RESP server protocol: parse, dispatch, reply strictly in request order, push back.

Each connection keeps a FIFO of pending replies. A reply is written as soon
as it and every earlier one are ready, so pipelined commands whose handlers
return Deferreds that fire out of order are still answered in order. When
more than ``max_pending`` replies are outstanding, or the transport's write
buffer is full, the connection stops reading and parsing until it drains.

Client limits: ``max_clients`` connections at once; per request, the
parser's argument count, argument size and total size; per connection, the
reply bytes queued behind a full transport buffer (``output_limit``) and the
time without traffic (``idle_timeout``).
"""

from __future__ import annotations

from collections import deque
from typing import TypedDict, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..net import no_delay
from .commands import INTERNAL_ERROR, CommandTable
from .encoder import ErrorReply, encode
from .parser import MAX_BULK, MAX_MULTIBULK, MAX_REQUEST, ProtocolError, RespParser
from .state import ClientRegistry, ConnectionState

__all__ = [
    "MAX_CLIENTS",
    "MAX_REQUEST",
    "OUTPUT_LIMIT",
    "ClientLimits",
    "RespServerFactory",
    "RespServerProtocol",
]

log = Logger()

_INTERNAL_ERROR_BYTES = b"-ERR internal error\r\n"


MAX_CLIENTS = 10_000
"""Connections served at once by default (Redis's ``maxclients``)."""

OUTPUT_LIMIT = 64 * 1024 * 1024
"""Default reply bytes a client may leave unread (Redis's ``client-output-buffer-limit``)."""


class ClientLimits(TypedDict, total=False):
    """Per-client limits of a listener besides max clients and bulk size
    (:class:`RespServerFactory`'s keywords of the same names)."""

    max_request: int
    output_limit: int
    idle_timeout: float


# Replies batched in one write before it is sent, so that a full transport
# buffer stops parsing mid-batch.
_FLUSH_AT = 64 * 1024


class _Pending:
    """One reply slot in a connection's FIFO."""

    __slots__ = ("close", "proto", "ready", "value")

    def __init__(self, proto: int) -> None:
        self.proto = proto
        self.ready = False
        self.value: object = None
        self.close = False


@implementer(IPushProducer)
class _OutputThrottle:
    """Registered with the transport so a full write buffer pauses reading and parsing."""

    def __init__(self, protocol: RespServerProtocol) -> None:
        self._protocol = protocol

    def pauseProducing(self) -> None:
        self._protocol._set_output_paused(True)

    def resumeProducing(self) -> None:
        self._protocol._set_output_paused(False)

    def stopProducing(self) -> None:
        pass


def _format_address(addr: IAddress | None) -> str:
    host = getattr(addr, "host", None)
    port = getattr(addr, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    name = getattr(addr, "name", None)
    if isinstance(name, bytes):
        return name.decode("utf-8", "replace") + ":0"
    return f"{name}:0" if name else ""


class RespServerProtocol(Protocol):
    """One client connection speaking RESP2/RESP3 to a :class:`CommandTable`.

    ``factory`` (set by the factory, left untyped like Twisted's) is a
    :class:`RespServerFactory`.
    """

    def __init__(self) -> None:
        self.conn: ConnectionState | None = None
        self.parser: RespParser | None = None
        self._pending: deque[_Pending] = deque()
        self._out: list[bytes] = []
        self._in_process = False
        self._paused_pending = False
        self._paused_output = False
        self._reading_paused = False
        self._closing = False
        self._close_after_write = False
        self._closed = False
        self._producer: _OutputThrottle | None = None
        self._out_size = 0
        self._backlog = 0
        self._idle_call: IDelayedCall | None = None

    def connectionMade(self) -> None:
        """Set up the parser and the client state, and register for write backpressure."""
        factory = self.factory
        registry = factory.registry
        transport = self.transport
        assert transport is not None
        if len(registry) >= factory.max_clients:
            # As Redis does: one error, then the connection is closed.
            self._closing = True
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.loseConnection()
            return
        no_delay(transport)
        fileno = getattr(transport, "fileno", None)
        try:
            fd = fileno() if fileno is not None else -1
        except Exception:
            fd = -1
        self.parser = RespParser(
            max_bulk=factory.max_bulk,
            max_multibulk=factory.max_args,
            max_request=factory.max_request,
            use_hiredis=factory.use_hiredis,
        )
        self.conn = ConnectionState(
            registry.next_id(),
            registry,
            peer=_format_address(transport.getPeer()),
            local=_format_address(transport.getHost()),
            fd=fd if isinstance(fd, int) else -1,
            now=registry.clock.seconds(),
        )
        self.conn.abort_hook = self._abort
        registry.add(self.conn)
        self._producer = _OutputThrottle(self)
        cast(IConsumer, transport).registerProducer(self._producer, True)
        if factory.idle_timeout > 0:
            self._idle_call = registry.clock.callLater(factory.idle_timeout, self._check_idle)

    def dataReceived(self, data: bytes) -> None:
        """Buffer ``data`` and run every complete command it finishes."""
        if self._closing or self._closed:
            return
        assert self.parser is not None and self.conn is not None
        self.conn.last_interaction = self.factory.registry.clock.seconds()
        self.parser.feed(data)
        self._process()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Drop pending replies (their Deferreds' results are discarded) and the client."""
        self._closed = True
        self._pending.clear()
        self._out.clear()
        if self._idle_call is not None:
            if self._idle_call.active():
                self._idle_call.cancel()
            self._idle_call = None
        if self.conn is not None:
            self.conn.closed = True
            self.conn.abort_hook = None
            self.factory.registry.remove(self.conn)

    @property
    def pending(self) -> int:
        """Replies not yet written."""
        return len(self._pending)

    def _process(self) -> None:
        """Parse and dispatch buffered commands until paused, closing or out of data."""
        if self._in_process:
            return
        assert self.parser is not None and self.conn is not None
        self._in_process = True
        parser = self.parser
        conn = self.conn
        dispatch = self.factory.table.dispatch
        pending = self._pending
        out = self._out
        max_pending = self.factory.max_pending
        try:
            while not self._reading_paused and not self._closing and not self._closed:
                try:
                    argv = parser.next_command()
                except ProtocolError as e:
                    self._enqueue(ErrorReply("ERR " + e.message), conn.protocol_version, True)
                    break
                if argv is None:
                    break
                result = dispatch(conn, argv)
                close = conn.close_requested
                if isinstance(result, Deferred):
                    entry = _Pending(conn.protocol_version)
                    entry.close = close
                    pending.append(entry)
                    if close:
                        self._closing = True
                    result.addBoth(self._settle, entry)
                elif pending or close:
                    self._enqueue(result, conn.protocol_version, close)
                else:
                    data = self._encode(result, conn.protocol_version)
                    out.append(data)
                    self._out_size += len(data)
                if len(pending) > max_pending and not self._paused_pending:
                    self._paused_pending = True
                    self._update_reading()
                if self._out_size >= _FLUSH_AT:
                    self._write_out()
        finally:
            self._in_process = False
        self._write_out()

    def _enqueue(self, value: object, proto: int, close: bool) -> None:
        entry = _Pending(proto)
        entry.value = value
        entry.ready = True
        entry.close = close
        if close:
            self._closing = True
        self._pending.append(entry)
        self._drain()

    def _settle(self, value: object, entry: _Pending) -> object:
        # Pass values through untouched, in case the handler shares its Deferred.
        if isinstance(value, Failure):
            if not self._closed:
                log.failure("internal error while running a command", value)
            result, value = None, INTERNAL_ERROR
        else:
            result = value
        if not self._closed:
            entry.value = value
            entry.ready = True
            self._drain()
        return result

    def _drain(self) -> None:
        """Move every ready reply at the head of the FIFO to the output."""
        pending = self._pending
        out = self._out
        while pending and pending[0].ready:
            entry = pending.popleft()
            data = self._encode(entry.value, entry.proto)
            out.append(data)
            self._out_size += len(data)
            if entry.close:
                self._close_after_write = True
                pending.clear()
                break
        if self._in_process:
            return
        self._write_out()
        if self._paused_pending and len(pending) <= self.factory.max_pending // 2:
            self._paused_pending = False
            self._update_reading()
            self._process()

    def _encode(self, value: object, proto: int) -> bytes:
        try:
            return encode(value, proto)
        except Exception:
            log.failure("cannot encode reply {value!r}", value=value)
            return _INTERNAL_ERROR_BYTES

    def _write_out(self) -> None:
        if self._closed:
            return
        transport = self.transport
        assert transport is not None and self.conn is not None
        out = self._out
        if out:
            if not self._paused_output:
                # The transport has room (under its own small buffer): a new backlog
                # starts, and its first reply does not count, so that one reply of any
                # size gets through; only what is queued behind it does.
                self._backlog = -len(out[0])
            data = b"".join(out) if len(out) > 1 else out[0]
            out.clear()
            self._out_size = 0
            transport.write(data)
            self._backlog += len(data)
            self.conn.last_interaction = self.factory.registry.clock.seconds()
            limit = self.factory.output_limit
            if limit and self._paused_output and self._backlog > limit:
                self._over_output_limit(limit)
                return
        if self._close_after_write:
            self._close_after_write = False
            self._close_transport()

    def _close_transport(self) -> None:
        transport = self.transport
        assert transport is not None
        if self._producer is not None:
            # A registered producer would keep loseConnection from completing.
            self._producer = None
            cast(IConsumer, transport).unregisterProducer()
        transport.loseConnection()

    def _abort(self) -> None:
        if self._closed:
            return
        # Treated as closed from now on: nothing more is written or run.
        self._closing = self._closed = True
        self._pending.clear()
        self._out.clear()
        if self.conn is not None:
            self.conn.closed = True
        transport = self.transport
        assert transport is not None
        if self._producer is not None:
            self._producer = None
            cast(IConsumer, transport).unregisterProducer()
        if ITCPTransport.providedBy(transport):
            transport.abortConnection()
        else:
            transport.loseConnection()

    def _over_output_limit(self, limit: int) -> None:
        conn = self.conn
        assert conn is not None
        log.warn(
            "closing client id={id} addr={addr}: {size} bytes of replies unread, "
            "over client-output-buffer-limit {limit}",
            id=conn.id,
            addr=conn.peer,
            size=self._backlog,
            limit=limit,
        )
        # Aborted: waiting to send what it does not read would keep the memory.
        self._abort()

    def _check_idle(self) -> None:
        self._idle_call = None
        conn = self.conn
        if self._closed or conn is None:
            return
        timeout = self.factory.idle_timeout
        clock = self.factory.registry.clock
        if self._pending:
            # Waiting for a reply is not idling.
            delay = timeout
        else:
            delay = conn.last_interaction + timeout - clock.seconds()
        if delay > 0:
            self._idle_call = clock.callLater(delay, self._check_idle)
            return
        log.debug("closing client id={id} addr={addr}: idle", id=conn.id, addr=conn.peer)
        if self._closing or self._paused_output:
            # Its unread output would keep a graceful close waiting forever.
            self._abort()
        else:
            self._closing = True
            self._close_transport()

    def _set_output_paused(self, paused: bool) -> None:
        self._paused_output = paused
        if not paused and self.conn is not None:
            # The transport's buffer drained: the client is reading.
            self.conn.last_interaction = self.factory.registry.clock.seconds()
        self._update_reading()
        if not paused and not self._in_process:
            self._process()

    def _update_reading(self) -> None:
        want_paused = self._paused_pending or self._paused_output
        if want_paused == self._reading_paused or self._closing or self._closed:
            # Once closing, nothing more is read; a closing transport may refuse resumes.
            return
        self._reading_paused = want_paused
        transport = self.transport
        assert transport is not None
        producer = cast(IPushProducer, transport)
        if want_paused:
            producer.pauseProducing()
        else:
            producer.resumeProducing()


class RespServerFactory(ServerFactory):
    """Builds :class:`RespServerProtocol` connections serving ``table``.

    ``max_pending`` bounds the replies outstanding per connection before it
    stops reading; ``max_clients`` the connections served at once (more are
    told ``-ERR max number of clients reached`` and closed). A request with
    more than ``max_args`` arguments, one over ``max_bulk`` bytes or all
    together over ``max_request`` bytes gets a protocol error and the
    connection is closed. A client is dropped when more than
    ``output_limit`` bytes of replies (0: no limit) queue behind a full
    transport buffer, or after ``idle_timeout`` seconds (0: never) without
    a request, a reply or a reply being read, unless one of its requests is
    still being answered.
    """

    protocol = RespServerProtocol

    def __init__(
        self,
        table: CommandTable,
        max_pending: int = 1024,
        max_bulk: int = MAX_BULK,
        clock: IReactorTime | None = None,
        use_hiredis: bool | None = None,
        max_clients: int = MAX_CLIENTS,
        max_request: int = MAX_REQUEST,
        max_args: int = MAX_MULTIBULK,
        output_limit: int = OUTPUT_LIMIT,
        idle_timeout: float = 0,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.table = table
        self.max_pending = max_pending
        self.max_bulk = max_bulk
        self.max_clients = max_clients
        self.max_request = max_request
        self.max_args = max_args
        self.output_limit = output_limit
        self.idle_timeout = idle_timeout
        self.use_hiredis = use_hiredis
        self.registry = ClientRegistry(clock)

    def client_settings(self) -> dict[str, str]:
        """The client limits under Redis's CONFIG GET names."""
        # Every connection is in Redis's "normal" class; the other classes have no
        # clients here, but are shown with the same limit for parsers that expect them.
        output = " ".join(f"{c} {self.output_limit} 0 0" for c in ("normal", "slave", "pubsub"))
        return {
            "maxclients": str(self.max_clients),
            "proto-max-bulk-len": str(self.max_bulk),
            "client-query-buffer-limit": str(self.max_request),
            "client-output-buffer-limit": output,
            "timeout": str(int(self.idle_timeout)),
        }
