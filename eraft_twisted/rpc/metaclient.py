"""How kv nodes and the router reach the meta group: AMP to its peer ports.

Every meta member can answer (reads are linearizable there, writes forwarded to
its leader); on a failure the next address is tried. Each connection first
checks the cluster id (:class:`~.commands.Identify`): a meta group of
another cluster is refused (logged once per address), and a client that
knows no cluster id yet (a new kv node, a router) adopts the first one it
is told and refuses any other from then on.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import msgpack
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure

from ..net import parse_address
from .commands import Identify, MetaJoin, MetaQuery, WrongGroup
from .identity import CLIENT, ROUTER, Identity, Refusals, answer_problem

log = Logger()


class WrongCluster(ConnectionError):
    """No meta server of this node's cluster answered; one of another did."""


class _MetaAMP(amp.AMP):
    gone = False

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.gone = True
        super().connectionLost(reason)


class AMPMetaClient:
    """Queries and registrations against a list of meta peer addresses.

    ``identity`` is the caller's (a kv node's, persisted); without one the
    client is a router expecting ``cluster_id`` ("": the first it meets).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        addresses: list[str],
        timeout: float = 5.0,
        identity: Identity | None = None,
        cluster_id: str = "",
    ) -> None:
        if not addresses:
            raise ValueError("no meta addresses")
        self.reactor = reactor
        self.addresses = addresses
        self.timeout = timeout
        self.identity = (
            identity if identity is not None else Identity(ROUTER, cluster_id=cluster_id)
        )
        self.refusals = Refusals()
        self.verified = False
        """A meta server accepted this client and was accepted."""
        self._proto: _MetaAMP | None = None
        self._next = 0

    @defer.inlineCallbacks
    def _connect(self, address: str) -> Generator[defer.Deferred[Any], Any, _MetaAMP]:
        host, port = parse_address(address)
        endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=self.timeout)
        proto = yield connectProtocol(endpoint, _MetaAMP())
        try:
            yield self._identify(proto, address)
        except Exception:
            if proto.transport is not None:
                proto.transport.loseConnection()
            raise
        return proto

    @defer.inlineCallbacks
    def _identify(self, proto: _MetaAMP, address: str) -> Generator[defer.Deferred[Any], Any, None]:
        ident = self.identity
        try:
            d = proto.callRemote(Identify, **ident.hello(CLIENT))
            answer = yield d.addTimeout(self.timeout, self.reactor)
        except WrongGroup as e:
            who = ROUTER if ident.kind == ROUTER else f"{ident.kind} node"
            raise self._refused(address, f"meta at {address} refused this {who}: {e}") from None
        except amp.UnhandledCommand:
            self.refusals.report(
                (address, "old"),
                f"meta at {address} runs an older version without cluster ids: not checked",
            )
            self.verified = True
            return
        problem = answer_problem(ident, answer, CLIENT)
        if problem is not None:
            raise self._refused(address, f"not using meta at {address}: {problem}")
        ident.learn_cluster(answer["cluster"], f"meta at {address}")
        self.verified = True

    def _refused(self, address: str, text: str) -> WrongCluster:
        self.refusals.report((address, text), f"{text} (check --meta)")
        return WrongCluster(text)

    @defer.inlineCallbacks
    def _call(
        self, command: type[amp.Command] | None, **kw: object
    ) -> Generator[defer.Deferred[Any], Any, Any]:
        last: Exception | None = None
        refused: WrongCluster | None = None
        for _ in range(len(self.addresses)):
            proto = self._proto
            if proto is None or proto.gone:
                try:
                    proto = yield self._connect(self.addresses[self._next % len(self.addresses)])
                except Exception as e:
                    last = e
                    if isinstance(e, WrongCluster):
                        refused = e
                    self._next += 1
                    continue
                self._proto = proto
            if command is None:
                return None
            try:
                d = proto.callRemote(command, **kw)
                result = yield d.addTimeout(self.timeout, self.reactor)
                return result
            except amp.RemoteAmpError:
                raise
            except Exception as e:
                last = e
                if proto.transport is not None:
                    proto.transport.loseConnection()
                self._proto = None
                self._next += 1
        if refused is not None:
            raise WrongCluster(f"no meta server of this cluster answered: {refused}")
        raise ConnectionError(f"no meta server answered: {last}")

    def identify(self) -> defer.Deferred[None]:
        """Connect once to check (or, on first contact, learn) the cluster id;
        never fails (refusals are logged). Kv nodes call it until verified."""
        if self.verified:
            return defer.succeed(None)
        d: defer.Deferred[None] = self._call(None)
        return d.addErrback(self._not_identified)

    @staticmethod
    def _not_identified(f: Failure) -> None:
        if not f.check(WrongCluster):  # a refusal is logged once, by _refused
            log.debug("meta group not reached yet: {e}", e=f.value)

    def query(self, num: int) -> defer.Deferred[dict[str, Any] | None]:
        """Config ``num`` (-1: latest), or None if it does not exist yet."""
        d = self._call(MetaQuery, num=num)
        return d.addCallback(
            lambda r: msgpack.unpackb(r["config"], strict_map_key=False) if r["config"] else None
        )

    def join(self, group: int, servers: list[str]) -> defer.Deferred[int]:
        """Register (or update) a group's servers; fires with the new config number."""
        return self._call(MetaJoin, group=group, servers=servers).addCallback(lambda r: r["num"])

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.loseConnection()
        self._proto = None
