"""The meta node's peer port: the Raft peer commands, plus the config
queries and group registrations kv nodes send over AMP
(:class:`~eraft_twisted.rpc.metaclient.AMPMetaClient`), answered only to
a link that identified itself as a client of this cluster (or to an older
version's, which cannot)."""

from __future__ import annotations

from typing import NoReturn

from twisted.internet import defer
from twisted.internet.interfaces import IAddress
from twisted.protocols import amp
from twisted.python.failure import Failure

from ..rpc.commands import MetaError as RemoteMetaError
from ..rpc.commands import MetaJoin, MetaQuery, ProposalFailed
from ..rpc.identity import CLIENT, Identity, Refusals
from ..rpc.transport import PeerHandler, PeerLocator, PeerServerFactory, peer_name
from ..storage import layout
from .api import MetaAPI
from .config import ClusterConfig, MetaError, UnknownConfig


def _remote_error(f: Failure) -> NoReturn:
    # Only declared errors cross AMP: a refusal, or "try again elsewhere".
    if f.check(MetaError):
        raise RemoteMetaError(str(f.value))
    raise ProposalFailed(str(f.value))


class MetaPeerLocator(PeerLocator):
    """Raft peer responders plus ``MetaQuery`` and ``MetaJoin``."""

    def __init__(
        self,
        handler: PeerHandler,
        identity: Identity | str,
        api: MetaAPI,
        refusals: Refusals | None = None,
        peer: str = "a peer",
    ) -> None:
        super().__init__(handler, identity, refusals, peer)
        self.api = api

    @MetaQuery.responder
    def meta_query(self, num: int) -> defer.Deferred[dict[str, bytes]]:
        """Config ``num`` (-1: latest) as msgpack, or empty if there is none yet."""
        self.require(CLIENT)

        def found(cfg: ClusterConfig) -> dict[str, bytes]:
            return {"config": layout.pack(cfg.to_dict())}

        def missing(f: Failure) -> dict[str, bytes]:
            if f.check(UnknownConfig):
                return {"config": b""}
            return _remote_error(f)

        return self.api.config(num).addCallbacks(found, missing)

    @MetaJoin.responder
    def meta_join(self, group: int, servers: list[str]) -> defer.Deferred[dict[str, int]]:
        """Register (or update) a group; answers with the resulting config number."""
        self.require(CLIENT)
        d = self.api.submit("join", group, list(servers))
        return d.addCallbacks(lambda r: {"num": r["config"]["num"]}, _remote_error)


class MetaPeerServerFactory(PeerServerFactory):
    """Accepts AMP links from meta peers and from kv nodes."""

    def __init__(self, handler: PeerHandler, identity: Identity | str, api: MetaAPI) -> None:
        super().__init__(handler, identity)
        self.api = api

    def buildProtocol(self, addr: IAddress | None) -> amp.AMP:
        locator = MetaPeerLocator(
            self.handler, self.identity, self.api, self.refusals, peer_name(addr)
        )
        return amp.AMP(locator=locator)
