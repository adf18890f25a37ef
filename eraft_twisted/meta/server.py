"""One meta node: storage, the Raft node, peer links and the HTTP admin API."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.server import Site

from ..node.group import RaftGroupServer
from ..rpc.identity import META
from .api import MetaAPI
from .app import MetaApplication
from .http import AdminAPI
from .peer import MetaPeerServerFactory

log = Logger()

GROUP = "meta"
"""Name of the meta group on peer links (never a kv group's ``kv-N``)."""


class MetaServer(RaftGroupServer):
    """Everything one ``twistd eraftmeta`` process runs: a meta group member
    and its HTTP admin API. The group's id is the cluster id."""

    command = "eraftmeta"
    kind = META

    def __init__(
        self, node_id: int, peers: list[str], data_dir: str, admin_address: str, **kw: Any
    ) -> None:
        super().__init__(node_id, peers, data_dir, GROUP, **kw)
        self.admin_address = admin_address
        self.site: Site | None = None

    @classmethod
    def from_options(cls, options: usage.Options) -> MetaServer:
        return cls(admin_address=options["admin"], **cls.group_options(options))

    def make_app(self) -> MetaApplication:
        return MetaApplication(self.storage)

    def peer_factory(self) -> Factory:
        return MetaPeerServerFactory(self.node, self.identity, MetaAPI(self.node, self.app))

    def start_listeners(self) -> None:
        self.site = Site(AdminAPI(self.node, self.app, self.addresses, self.identity))
        self.site.displayTracebacks = False
        self.listen(self.admin_address, self.site)

    def describe(self) -> str:
        return f"peers on {self.peers[self.node_id]}, admin API on http://{self.admin_address}"
