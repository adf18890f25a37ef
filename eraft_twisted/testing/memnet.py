"""A simulated TCP network in one process, on one ``task.Clock``.

Every process of an in-process cluster gets a :class:`HostReactor`: time
comes from the shared clock, and ``connectTCP`` reaches what another host
listens on through :class:`Network`, so production code (peer links over
AMP, RESP clients, the meta client) runs unchanged over it. Bytes travel in
``twisted.test.iosim`` transports, one hop of :attr:`Network.latency` each
way, delivered by the clock.

Faults: :meth:`Network.cut` between two hosts holds their bytes in flight
(a partition; :meth:`Network.heal` delivers them) and refuses new
connections; :meth:`Network.kill` drops every connection of a host, as a
crashed process's would be.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from twisted.internet import error, task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IDelayedCall,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import ClientFactory
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport
from zope.interface import implementer

from ..net import parse_address

__all__ = ["HostReactor", "Network"]

LATENCY = 0.001
"""Seconds one write takes to reach the other end."""


class _End(FakeTransport):  # type: ignore[misc]
    """One end of a simulated connection: a write wakes the connection."""

    def __init__(
        self, conn: Connection, protocol: IProtocol, is_server: bool, host: IAddress, peer: IAddress
    ) -> None:
        super().__init__(protocol, is_server, host, peer)
        self.conn = conn

    def write(self, data: bytes) -> None:
        super().write(data)
        self.conn.wake()

    def loseConnection(self) -> None:
        super().loseConnection()
        self.conn.wake()

    def abortConnection(self) -> None:
        self.loseConnection()


class Connection:
    """A connection between two hosts; the clock moves its bytes.

    What a side writes leaves it at the next step (into the network), so
    closing is immediate locally, as with a kernel socket buffer; the other
    side gets the bytes, then the close, once no cut separates them.
    """

    def __init__(self, net: Network, client_host: str, server_host: str) -> None:
        self.net = net
        self.hosts = (client_host, server_host)
        self.ends: tuple[_End, _End] | None = None
        self.in_flight: tuple[list[bytes], list[bytes]] = ([], [])
        """Bytes on their way to the server, and to the client."""
        self.closing = [False, False]
        """The client (server) closed: the other side is told after its bytes."""
        self._call: IDelayedCall | None = None
        self.closed = False

    def connect(
        self, client: IProtocol, server: IProtocol, client_addr: IAddress, server_addr: IAddress
    ) -> None:
        client_io = _End(self, client, False, client_addr, server_addr)
        server_io = _End(self, server, True, server_addr, client_addr)
        self.ends = (client_io, server_io)
        server.makeConnection(server_io)
        client.makeConnection(client_io)

    def wake(self) -> None:
        if not self.closed and (self._call is None or not self._call.active()):
            self._call = self.net.clock.callLater(self.net.latency, self._step)

    def _step(self) -> None:
        self._call = None
        if self.closed or self.ends is None:
            return
        for side, io in enumerate(self.ends):
            io._checkProducer()
            if io.stream:
                self.in_flight[side].extend(io.stream)
                io.stream = []
            if io.disconnecting and not io.disconnected:
                io.disconnected = True
                self.closing[side] = True
                io.reportDisconnect()
        if self.net.is_cut(*self.hosts):
            return  # held in flight until healed
        for side in (0, 1):
            other = self.ends[1 - side]
            data = b"".join(self.in_flight[side])
            self.in_flight[side].clear()
            if data and not other.disconnected:
                other.protocol.dataReceived(data)
            if self.closing[side] and not other.disconnected:
                other.disconnecting = other.disconnected = True
                other.reportDisconnect()
        if all(io.disconnected for io in self.ends):
            self.closed = True
            self.net.connections.discard(self)

    def drop(self) -> None:
        """Both ends see the connection lost at once; nothing more moves."""
        if self.closed or self.ends is None:
            return
        self.closed = True
        self.net.connections.discard(self)
        for io in self.ends:
            if not io.disconnected:
                io.disconnecting = io.disconnected = True
                io.stream = []
                io.protocol.connectionLost(
                    Failure(error.ConnectionLost("the simulated network dropped it"))
                )


@implementer(IConnector)
class _Connector:
    """An outgoing connection attempt, completed by the clock."""

    def __init__(
        self, net: Network, host: str, dest: tuple[str, int], factory: ClientFactory[Any]
    ) -> None:
        self.net = net
        self.host = host
        self.dest = dest
        self.factory = factory
        self.state = "connecting"
        self.conn: Connection | None = None

    def getDestination(self) -> IPv4Address:
        return IPv4Address("TCP", *self.dest)

    def stopConnecting(self) -> None:
        if self.state == "connecting":
            self.state = "disconnected"
            self.factory.clientConnectionFailed(self, Failure(error.UserError()))

    def disconnect(self) -> None:
        if self.state == "connecting":
            self.stopConnecting()
        elif self.conn is not None and self.conn.ends is not None:
            self.conn.ends[0].loseConnection()

    def connect(self) -> None:
        self.state = "connecting"
        self.net.clock.callLater(self.net.latency, self.net.complete, self)


@implementer(IReactorTime, IReactorTCP)
class HostReactor:
    """What one simulated process sees as its reactor: the shared clock
    (``skew`` seconds off, for its wall-clock readings only) and TCP over
    the simulated network, as host ``name``."""

    def __init__(self, net: Network, name: str) -> None:
        self.net = net
        self.name = name
        self.skew = 0.0

    # IReactorTime
    def seconds(self) -> float:
        return self.net.clock.seconds() + self.skew

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kwargs: object
    ) -> IDelayedCall:
        return self.net.clock.callLater(delay, callable, *args, **kwargs)

    def getDelayedCalls(self) -> list[IDelayedCall]:
        return list(self.net.clock.getDelayedCalls())

    # what a service may ask of a running reactor
    def callWhenRunning(self, f: Callable[..., object], *a: object, **kw: object) -> None:
        self.net.clock.callLater(0, f, *a, **kw)

    def callFromThread(self, f: Callable[..., object], *a: object, **kw: object) -> None:
        self.net.clock.callLater(0, f, *a, **kw)

    # IReactorTCP
    def connectTCP(
        self,
        host: str,
        port: int,
        factory: ClientFactory[Any],
        timeout: float = 30.0,
        bindAddress: tuple[str, int] | None = None,
    ) -> IConnector:
        connector = _Connector(self.net, self.name, (host, port), factory)
        factory.doStart()
        factory.startedConnecting(connector)
        connector.connect()
        return connector

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> _Listening:
        return self.net.listen(self.name, f"{interface or '127.0.0.1'}:{port}", factory)


@implementer(IListeningPort)
class _Listening:
    """A listening port of the simulated network."""

    def __init__(self, net: Network, host: str, address: str, factory: IProtocolFactory):
        self.net = net
        self.host = host
        self.address = address
        self.factory = factory

    def getHost(self) -> IPv4Address:
        host, port = parse_address(self.address)
        return IPv4Address("TCP", host, port)

    def startListening(self) -> None:
        """Listening already (from :meth:`Network.listen` on)."""

    def stopListening(self) -> None:
        if self.net.listeners.get(self.address) is self:
            del self.net.listeners[self.address]
            self.factory.doStop()


class Network:
    """Hosts, what they listen on, the connections between them, and faults."""

    def __init__(self, clock: task.Clock, latency: float = LATENCY) -> None:
        self.clock = clock
        self.latency = latency
        self.listeners: dict[str, _Listening] = {}
        self.connections: set[Connection] = set()
        self.cuts: set[frozenset[str]] = set()
        self.dead: set[str] = set()
        self._ports = itertools.count(40000)

    def reactor(self, name: str) -> HostReactor:
        """The reactor of the process on host ``name``."""
        self.dead.discard(name)
        return HostReactor(self, name)

    def listen(self, host: str, address: str, factory: IProtocolFactory) -> _Listening:
        """Accept connections to ``address`` (``host:port``) for ``factory``."""
        if address in self.listeners:
            raise error.CannotListenError(*parse_address(address), OSError("address in use"))
        port = self.listeners[address] = _Listening(self, host, address, factory)
        factory.doStart()
        return port

    def complete(self, connector: _Connector) -> None:
        """Finish (or refuse) a connection attempt."""
        if connector.state != "connecting":
            return
        address = f"{connector.dest[0]}:{connector.dest[1]}"
        port = self.listeners.get(address)
        refused = (
            port is None
            or connector.host in self.dead
            or port.host in self.dead
            or self.is_cut(connector.host, port.host)
        )
        factory = connector.factory
        if port is None or refused:
            connector.state = "disconnected"
            factory.clientConnectionFailed(connector, Failure(error.ConnectionRefusedError()))
            factory.doStop()
            return
        client_addr = IPv4Address("TCP", "127.0.0.1", next(self._ports))
        server_addr = IPv4Address("TCP", *connector.dest)
        server = port.factory.buildProtocol(client_addr)
        client = factory.buildProtocol(server_addr)
        if server is None or client is None:
            connector.state = "disconnected"
            factory.clientConnectionFailed(connector, Failure(error.ConnectionRefusedError()))
            return
        conn = connector.conn = Connection(self, connector.host, port.host)
        connector.state = "connected"
        self.connections.add(conn)
        conn.connect(client, server, client_addr, server_addr)

    # -- faults --------------------------------------------------------------
    def is_cut(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self.cuts

    def cut(self, a: str, b: str) -> None:
        """Partition hosts ``a`` and ``b``: bytes between them wait, new
        connections are refused."""
        self.cuts.add(frozenset((a, b)))

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """Undo :meth:`cut` (every cut with no arguments); held bytes move."""
        if a is None:
            self.cuts.clear()
        else:
            self.cuts.discard(frozenset((a, b)))
        for conn in list(self.connections):
            conn.wake()

    def kill(self, host: str) -> None:
        """``host`` crashed: its connections drop, nothing reaches it."""
        self.dead.add(host)
        for conn in list(self.connections):
            if host in conn.hosts:
                conn.drop()
        for port in list(self.listeners.values()):
            if port.host == host:
                port.stopListening()
