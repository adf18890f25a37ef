"""Peer links of one Raft group over AMP: a server for incoming links and
one reconnecting client per peer for outgoing ones."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from ..raft.types import Message
from ..tcp import no_delay
from .codec import decode_messages, encode_messages
from .commands import (
    ChangeMembership,
    LeaderUnreachable,
    NotLeaderError,
    ProposalFailed,
    Propose,
    RaftMessages,
    SnapshotChunk,
    SnapshotEnd,
    SnapshotOpen,
    TransferLeader,
)

log = Logger()


class PeerHandler(Protocol):
    """What the transport needs from the node it serves."""

    node_id: int

    def receive_messages(self, msgs: list[Message]) -> None: ...

    def propose_forwarded(self, data: bytes) -> defer.Deferred[bytes]: ...

    def snapshot_open(self, sender: int, term: int, meta: bytes) -> defer.Deferred[int]: ...

    def snapshot_chunk(self, stream: int, items: bytes) -> defer.Deferred[None]: ...

    def snapshot_end(self, stream: int) -> defer.Deferred[None]: ...

    def change_membership(self, kind: int, node_id: int, address: str) -> defer.Deferred[int]: ...

    def transfer_leadership(self, target: int) -> defer.Deferred[int]: ...


def parse_address(addr: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); raises ValueError with a clear message."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad address {addr!r}: expected host:port")
    return host, int(port)


def _as_proposal_failed(f: Failure) -> Any:
    # Only declared errors cross AMP cleanly; say what went wrong in one.
    raise ProposalFailed(str(f.value))


class PeerLocator(amp.CommandLocator):
    """Responders for commands arriving from peers."""

    def __init__(self, handler: PeerHandler, group: str) -> None:
        self.handler = handler
        self.group = group

    @RaftMessages.responder
    def raft_messages(self, payload: bytes) -> dict[str, Any]:
        try:
            msgs = decode_messages(payload)
        except ValueError as e:
            log.warn("dropping malformed raft payload: {e}", e=e)
            return {}
        self.handler.receive_messages(msgs)
        return {}

    @Propose.responder
    def propose(self, data: bytes) -> defer.Deferred[dict[str, Any]]:
        d = self.handler.propose_forwarded(data)
        return d.addCallback(lambda result: {"result": result})

    @SnapshotOpen.responder
    def snapshot_open(self, sender: int, term: int, meta: bytes) -> defer.Deferred[dict[str, Any]]:
        d = self.handler.snapshot_open(sender, term, meta)
        return d.addCallback(lambda stream: {"stream": stream})

    @SnapshotChunk.responder
    def snapshot_chunk(self, stream: int, items: bytes) -> defer.Deferred[dict[str, Any]]:
        return self.handler.snapshot_chunk(stream, items).addCallback(lambda _: {})

    @SnapshotEnd.responder
    def snapshot_end(self, stream: int) -> defer.Deferred[dict[str, Any]]:
        return self.handler.snapshot_end(stream).addCallback(lambda _: {})

    @ChangeMembership.responder
    def change_membership(
        self, kind: int, node_id: int, address: str
    ) -> defer.Deferred[dict[str, Any]]:
        d = self.handler.change_membership(kind, node_id, address)
        return d.addCallbacks(lambda index: {"index": index}, _as_proposal_failed)

    @TransferLeader.responder
    def transfer_leader(self, target: int) -> defer.Deferred[dict[str, Any]]:
        d = self.handler.transfer_leadership(target)
        return d.addCallbacks(lambda leader: {"leader": leader}, _as_proposal_failed)


class PeerServerFactory(Factory):
    """Accepts AMP links from peers."""

    def __init__(self, handler: PeerHandler, group: str) -> None:
        self.handler = handler
        self.group = group

    def buildProtocol(self, addr: Any) -> amp.AMP:
        return _ServerAMP(locator=PeerLocator(self.handler, self.group))


class _ServerAMP(amp.AMP):
    def connectionMade(self) -> None:
        super().connectionMade()
        no_delay(self.transport)


class _ClientAMP(amp.AMP):
    def __init__(self, link: PeerLink) -> None:
        super().__init__(locator=PeerLocator(link.transport.handler, link.transport.group))
        self.link = link

    def connectionMade(self) -> None:
        super().connectionMade()
        no_delay(self.transport)
        self.link.connected(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.link.disconnected(self)


class _ClientFactory(Factory):
    def __init__(self, link: PeerLink) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> amp.AMP:
        return _ClientAMP(self.link)


LINK_WAIT = 2.0
"""Seconds a forwarded request waits for a peer link that is reconnecting."""


class PeerLink:
    """The outgoing link to one peer, reconnecting with backoff."""

    def __init__(self, transport: PeerTransport, peer_id: int, address: str) -> None:
        self.transport = transport
        self.peer_id = peer_id
        self.address = address
        self.proto: amp.AMP | None = None
        host, port = parse_address(address)
        endpoint = TCP4ClientEndpoint(transport.reactor, host, port, timeout=5)
        self.service = ClientService(
            endpoint,
            _ClientFactory(self),
            retryPolicy=backoffPolicy(initialDelay=0.05, maxDelay=2.0, factor=2.0),
            clock=transport.reactor,
        )

    def connected(self, proto: amp.AMP) -> None:
        self.proto = proto
        log.info("connected to peer {peer} at {addr}", peer=self.peer_id, addr=self.address)

    def disconnected(self, proto: amp.AMP) -> None:
        if self.proto is proto:
            self.proto = None
            log.info("lost peer {peer} at {addr}", peer=self.peer_id, addr=self.address)


class PeerTransport(MultiService):
    """Sends Raft messages and forwarded proposals to the other members."""

    def __init__(
        self,
        reactor: Any,
        handler: PeerHandler,
        group: str,
        peers: dict[int, str],
        on_unreachable: Callable[[int], None],
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.handler = handler
        self.group = group
        self.on_unreachable = on_unreachable
        self.links: dict[int, PeerLink] = {}
        for nid, addr in peers.items():
            self.add_peer(nid, addr)

    def add_peer(self, nid: int, address: str) -> None:
        """Start a link to a (new) member, or move it to a new address."""
        if nid == self.handler.node_id:
            return
        old = self.links.get(nid)
        if old is not None:
            if old.address == address:
                return
            self.remove_peer(nid)
        link = PeerLink(self, nid, address)
        self.links[nid] = link
        link.service.setServiceParent(self)

    def remove_peer(self, nid: int) -> None:
        """Stop the link to a removed member."""
        link = self.links.pop(nid, None)
        if link is not None:
            link.service.disownServiceParent()

    def addresses(self) -> dict[int, str]:
        return {nid: link.address for nid, link in self.links.items()}

    def send(self, msgs: list[Message]) -> None:
        """Deliver messages, best effort; unreachable peers are reported."""
        by_peer: dict[int, list[Message]] = defaultdict(list)
        for m in msgs:
            by_peer[m.to].append(m)
        for nid, batch in by_peer.items():
            link = self.links.get(nid)
            if link is None or link.proto is None:
                self.on_unreachable(nid)
                continue
            try:
                link.proto.callRemote(RaftMessages, payload=encode_messages(batch))
            except Exception as e:  # connection dropped between checks
                log.debug("send to {peer} failed: {e}", peer=nid, e=e)
                self.on_unreachable(nid)

    def _proto(self, nid: int, error: Callable[[str], Exception]) -> defer.Deferred[Any]:
        """The link to ``nid``, waiting up to LINK_WAIT for it to (re)connect
        (its retry back-off right after start-up, say): nothing has been sent
        yet, so waiting is safe where failing would bounce a client."""
        link = self.links.get(nid)
        if link is None:
            return defer.fail(error(f"peer {nid} is unknown"))
        if link.proto is not None:
            return defer.succeed(link.proto)
        d: defer.Deferred[Any] = link.service.whenConnected()

        def unreachable(f: Failure) -> Failure:
            if f.check(defer.CancelledError, defer.TimeoutError):
                raise error(f"peer {nid} is unreachable")
            return f

        return d.addTimeout(LINK_WAIT, self.reactor).addErrback(unreachable)

    def call(self, nid: int, command: type[amp.Command], **kw: Any) -> defer.Deferred[Any]:
        """Call an AMP command on member ``nid`` and get its answer."""
        return self._proto(nid, ConnectionError).addCallback(
            lambda proto: proto.callRemote(command, **kw)
        )

    def forward_propose(self, nid: int, data: bytes) -> defer.Deferred[bytes]:
        """Ask member ``nid`` (the leader) to propose ``data``."""
        d = self._proto(nid, LeaderUnreachable)
        d.addCallback(lambda proto: proto.callRemote(Propose, data=data))
        return d.addCallback(lambda r: r["result"])


__all__ = [
    "NotLeaderError",
    "PeerServerFactory",
    "PeerTransport",
    "ProposalFailed",
    "parse_address",
]
