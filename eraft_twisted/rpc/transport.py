"""Peer links of one Raft group over AMP: a server for incoming links and
one reconnecting client per peer for outgoing ones.

Every link opens with :class:`Identify`; nothing else is accepted on a
link from a peer of another group (see :mod:`.identity`). Each side logs a
refusal once, and a refused link stays open and idle, so a misconfigured
peer costs neither a reconnect loop nor a stream of log lines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn, Protocol

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from ..net import no_delay, parse_address
from ..raft.types import Message
from .codec import decode_messages, encode_messages
from .commands import (
    ChangeMembership,
    Identify,
    LeaderUnreachable,
    NotIdentified,
    NotLeaderError,
    ProposalFailed,
    Propose,
    RaftMessages,
    SnapshotChunk,
    SnapshotEnd,
    SnapshotOpen,
    TransferLeader,
    WrongGroup,
)
from .identity import (
    PEER,
    Hello,
    IdentifyAnswer,
    Identity,
    Refusals,
    answer_problem,
    as_identity,
    refusal,
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


def _as_proposal_failed(f: Failure) -> NoReturn:
    # Only declared errors cross AMP cleanly; say what went wrong in one.
    raise ProposalFailed(str(f.value))


def _empty(_: None) -> dict[str, object]:
    return {}


NEW, PENDING, LEGACY, REFUSED = "new", "pending", "legacy", "refused"
"""Link states besides a purpose (PEER, CLIENT) the other side was accepted for."""

HELLO_RETRY = 1.0
"""Seconds before identifying again to a peer that did not know its group id."""


def peer_name(addr: object) -> str:
    """``host:port`` of a connection's other end, for log lines."""
    host, port = getattr(addr, "host", None), getattr(addr, "port", None)
    return f"{host}:{port}" if host is not None else str(addr)


class PeerLocator(amp.CommandLocator):
    """Responders for commands arriving from peers, once the link said who
    is calling (:class:`Identify`) and was accepted."""

    def __init__(
        self,
        handler: PeerHandler,
        identity: Identity | str,
        refusals: Refusals | None = None,
        peer: str = "a peer",
        outgoing: bool = False,
    ) -> None:
        self.handler = handler
        self.identity = as_identity(identity)
        self.refusals = refusals if refusals is not None else Refusals()
        self.peer = peer
        self.state = PENDING if outgoing else NEW
        self.dropped = 0
        """Raft message batches dropped because the link was not accepted."""

    @Identify.responder
    def identify(
        self, purpose: str, kind: str, node: int, group: str, cluster: str
    ) -> IdentifyAnswer:
        hello: Hello = {
            "purpose": purpose,
            "kind": kind,
            "node": node,
            "group": group,
            "cluster": cluster,
        }
        self.state = PENDING  # it identifies itself: no longer taken for an older version
        problem = refusal(self.identity, hello)
        if problem is not None:
            self.state = REFUSED
            self.refusals.report(
                tuple(hello.values()),
                f"refused a {purpose} link from {self.peer}: {problem}; nothing it sends "
                "is accepted (check --peers / --meta of both sides)",
            )
            raise WrongGroup(problem)
        self.state = purpose
        return self.identity.answer()

    def allowed(self, purpose: str) -> bool:
        """May this link send ``purpose`` commands?"""
        if self.state == NEW:
            log.warn(
                "{peer} sent commands without identifying itself (an older version?): "
                "its group is not checked",
                peer=self.peer,
            )
            self.state = LEGACY
        return self.state in (purpose, LEGACY)

    def require(self, purpose: str) -> None:
        if not self.allowed(purpose):
            raise WrongGroup(f"{self.identity.describe()} did not accept this link ({self.state})")

    @RaftMessages.responder
    def raft_messages(self, payload: bytes) -> dict[str, object]:
        if not self.allowed(PEER):
            self.dropped += 1
            return {}
        try:
            msgs = decode_messages(payload)
        except ValueError as e:
            log.warn("dropping malformed raft payload: {e}", e=e)
            return {}
        self.handler.receive_messages(msgs)
        return {}

    @Propose.responder
    def propose(self, data: bytes) -> defer.Deferred[dict[str, bytes]]:
        self.require(PEER)
        d = self.handler.propose_forwarded(data)
        return d.addCallback(lambda result: {"result": result})

    @SnapshotOpen.responder
    def snapshot_open(self, sender: int, term: int, meta: bytes) -> defer.Deferred[dict[str, int]]:
        self.require(PEER)
        d = self.handler.snapshot_open(sender, term, meta)
        return d.addCallback(lambda stream: {"stream": stream})

    @SnapshotChunk.responder
    def snapshot_chunk(self, stream: int, items: bytes) -> defer.Deferred[dict[str, object]]:
        self.require(PEER)
        return self.handler.snapshot_chunk(stream, items).addCallback(_empty)

    @SnapshotEnd.responder
    def snapshot_end(self, stream: int) -> defer.Deferred[dict[str, object]]:
        self.require(PEER)
        return self.handler.snapshot_end(stream).addCallback(_empty)

    @ChangeMembership.responder
    def change_membership(
        self, kind: int, node_id: int, address: str
    ) -> defer.Deferred[dict[str, int]]:
        self.require(PEER)
        d = self.handler.change_membership(kind, node_id, address)
        return d.addCallbacks(lambda index: {"index": index}, _as_proposal_failed)

    @TransferLeader.responder
    def transfer_leader(self, target: int) -> defer.Deferred[dict[str, int]]:
        self.require(PEER)
        d = self.handler.transfer_leadership(target)
        return d.addCallbacks(lambda leader: {"leader": leader}, _as_proposal_failed)


class PeerServerFactory(Factory):
    """Accepts AMP links from peers."""

    def __init__(self, handler: PeerHandler, identity: Identity | str) -> None:
        self.handler = handler
        self.identity = as_identity(identity)
        self.refusals = Refusals()

    def locator(self, addr: IAddress | None) -> PeerLocator:
        return PeerLocator(self.handler, self.identity, self.refusals, peer_name(addr))

    def buildProtocol(self, addr: IAddress | None) -> amp.AMP:
        return _ServerAMP(locator=self.locator(addr))


class _ServerAMP(amp.AMP):
    def connectionMade(self) -> None:
        super().connectionMade()
        no_delay(self.transport)


class _ClientAMP(amp.AMP):
    gone = False

    def __init__(self, link: PeerLink) -> None:
        t = link.transport
        self.peer_locator = PeerLocator(t.handler, t.identity, peer=link.address, outgoing=True)
        super().__init__(locator=self.peer_locator)
        self.link = link

    def connectionMade(self) -> None:
        super().connectionMade()
        no_delay(self.transport)
        self.link.connected(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.gone = True
        super().connectionLost(reason)
        self.link.disconnected(self)


def _drop(proto: amp.AMP) -> None:
    if proto.transport is not None:
        proto.transport.loseConnection()


class _ClientFactory(Factory):
    def __init__(self, link: PeerLink) -> None:
        self.link = link

    def buildProtocol(self, addr: IAddress | None) -> amp.AMP:
        return _ClientAMP(self.link)


LINK_WAIT = 2.0
"""Seconds a forwarded request waits for a peer link that is reconnecting."""


class PeerLink:
    """The outgoing link to one peer, reconnecting with backoff; it carries
    Raft traffic once the peer accepted this node's :class:`Identify`."""

    def __init__(self, transport: PeerTransport, peer_id: int, address: str) -> None:
        self.transport = transport
        self.peer_id = peer_id
        self.address = address
        self.proto: amp.AMP | None = None
        self.waiting: _ClientAMP | None = None
        """Connected, but this node does not know its own group id yet."""
        self.refused: str | None = None
        """Why the peer is refused (by it or by us), until it is accepted."""
        self._ready: list[defer.Deferred[amp.AMP]] = []
        self._retry: IDelayedCall | None = None
        host, port = parse_address(address)
        endpoint = TCP4ClientEndpoint(transport.reactor, host, port, timeout=5)
        self.service = ClientService(
            endpoint,
            _ClientFactory(self),
            retryPolicy=backoffPolicy(initialDelay=0.05, maxDelay=2.0, factor=2.0),
            clock=transport.reactor,
        )

    def connected(self, proto: _ClientAMP) -> None:
        self.hello(proto)

    def hello(self, proto: _ClientAMP) -> None:
        """Say who we are (once we know it)."""
        self._retry = None
        ident = self.transport.identity
        if proto.gone:
            return
        if not ident.known and not ident.learn:
            self.waiting = proto
            return
        self.waiting = None
        d = proto.callRemote(Identify, **ident.hello(PEER))
        d.addCallbacks(partial(self._accepted, proto), partial(self._not_accepted, proto))

    def _accepted(self, proto: _ClientAMP, answer: IdentifyAnswer) -> None:
        ident = self.transport.identity
        if not ident.known and ident.learn:
            ident.adopt(
                answer["group"], answer["cluster"], f"peer {self.peer_id} at {self.address}"
            )
        problem = answer_problem(ident, answer, PEER)
        if problem is not None:
            self._refuse(f"not talking to peer {self.peer_id} at {self.address}: {problem}")
            _drop(proto)
            return
        self._use(proto, PEER)

    def _not_accepted(self, proto: _ClientAMP, f: Failure) -> None:
        if proto.gone:
            return
        if f.check(NotIdentified):
            log.debug("peer {peer}: {e}; asking again", peer=self.peer_id, e=f.value)
            self._retry = self.transport.reactor.callLater(HELLO_RETRY, self.hello, proto)
        elif f.check(WrongGroup):
            # Kept open and idle: the answer cannot change until the peer
            # restarts, which drops the link and starts a new one.
            self._refuse(f"peer {self.peer_id} at {self.address} refused this node: {f.value}")
        elif f.check(amp.UnhandledCommand):
            log.warn(
                "peer {peer} at {addr} runs an older version without group ids: "
                "its group is not checked",
                peer=self.peer_id,
                addr=self.address,
            )
            self._use(proto, LEGACY)
        else:
            log.warn("peer {peer}: identifying failed: {e}", peer=self.peer_id, e=f.value)
            _drop(proto)

    def _refuse(self, text: str) -> None:
        if text != self.refused:
            self.refused = text
            log.error("{text}; no Raft messages go to it (check --peers)", text=text)

    def _use(self, proto: _ClientAMP, state: str) -> None:
        proto.peer_locator.state = state
        self.refused = None
        self.proto = proto
        log.info("connected to peer {peer} at {addr}", peer=self.peer_id, addr=self.address)
        ready, self._ready = self._ready, []
        for d in ready:
            d.callback(proto)

    def when_ready(self) -> defer.Deferred[amp.AMP]:
        """Fires with the protocol once the link carries Raft traffic."""
        if self.proto is not None:
            return defer.succeed(self.proto)
        d: defer.Deferred[amp.AMP] = defer.Deferred(self._forget)
        self._ready.append(d)
        return d

    def _forget(self, d: defer.Deferred[amp.AMP]) -> None:
        if d in self._ready:
            self._ready.remove(d)

    def disconnected(self, proto: amp.AMP) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self.waiting is proto:
            self.waiting = None
        if self.proto is proto:
            self.proto = None
            log.info("lost peer {peer} at {addr}", peer=self.peer_id, addr=self.address)


class PeerTransport(MultiService):
    """Sends Raft messages and forwarded proposals to the other members."""

    def __init__(
        self,
        reactor: IReactorTime,
        handler: PeerHandler,
        identity: Identity | str,
        peers: dict[int, str],
        on_unreachable: Callable[[int], None],
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.handler = handler
        self.identity = as_identity(identity)
        self.identity.on_change.append(self._identity_known)
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

    def refused(self) -> dict[int, str]:
        """Peer id -> why its link is refused, for the peers that are."""
        return {nid: link.refused for nid, link in self.links.items() if link.refused}

    def _identity_known(self, identity: Identity) -> None:
        for link in self.links.values():
            if link.waiting is not None:
                link.hello(link.waiting)

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

    def _proto(self, nid: int, error: Callable[[str], Exception]) -> defer.Deferred[amp.AMP]:
        """The link to ``nid``, waiting up to LINK_WAIT for it to (re)connect
        (its retry back-off right after start-up, say): nothing has been sent
        yet, so waiting is safe where failing would bounce a client."""
        link = self.links.get(nid)
        if link is None:
            return defer.fail(error(f"peer {nid} is unknown"))
        d = link.when_ready()

        def unreachable(f: Failure) -> Failure:
            if f.check(defer.CancelledError, defer.TimeoutError):
                why = f": {link.refused}" if link.refused else ""
                raise error(f"peer {nid} is unreachable{why}")
            return f

        return d.addTimeout(LINK_WAIT, self.reactor).addErrback(unreachable)

    def call(
        self, nid: int, command: type[amp.Command], **kw: object
    ) -> defer.Deferred[dict[str, Any]]:
        """Call an AMP command on member ``nid`` and get its answer."""
        return self._proto(nid, ConnectionError).addCallback(
            lambda proto: proto.callRemote(command, **kw)
        )

    def forward_propose(self, nid: int, data: bytes) -> defer.Deferred[bytes]:
        """Ask member ``nid`` (the leader) to propose ``data``."""
        d = self._proto(nid, LeaderUnreachable).addCallback(
            lambda proto: proto.callRemote(Propose, data=data)
        )
        return d.addCallback(lambda r: r["result"])


__all__ = [
    "NotLeaderError",
    "PeerServerFactory",
    "PeerTransport",
    "ProposalFailed",
]
