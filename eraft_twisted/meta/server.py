"""One meta node: storage, the Raft node, peer links and the HTTP admin API."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.server import Site

from ..node.driver import RaftNode
from ..raft.confchange import decode_conf_change
from ..raft.core import Config
from ..raft.types import ConfChangeType, ConfState
from ..rpc.transport import PeerTransport, parse_address
from ..storage.leveldb import LevelDBStorage, StorageError
from .api import MetaAPI
from .app import MetaApplication
from .http import AdminAPI
from .peer import MetaPeerServerFactory

log = Logger()

GROUP = "meta"
"""Name of the meta group on peer links (never a kv group's ``kv-N``)."""


def tcp_endpoint(address: str) -> str:
    """``host:port`` -> a listening strports description (IPv6 hosts escaped)."""
    host, port = parse_address(address)
    host = host.strip("[]").replace(":", "\\:")
    return f"tcp:{port}:interface={host}"


class MetaServer(MultiService):
    """Everything one ``twistd eraftmeta`` process runs, started in order and
    stopped in reverse: listeners first, then the node, then the disk."""

    def __init__(
        self,
        node_id: int,
        peers: list[str],
        data_dir: str,
        admin_address: str,
        reactor: Any = None,
        fsync: str = "always",
        tick_ms: int = 100,
        election_ticks: int = 10,
        timeout: float = 5.0,
        snapshot_entries: int = 10_000,
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.node_id = node_id
        self.peers = peers
        self.data_dir = data_dir
        self.admin_address = admin_address
        self.fsync = fsync
        self.tick_ms = tick_ms
        self.election_ticks = election_ticks
        self.timeout = timeout
        self.snapshot_entries = snapshot_entries
        self.storage: Any = None
        self.app: MetaApplication | None = None
        self.node: RaftNode | None = None
        self.transport: PeerTransport | None = None
        self.site: Site | None = None

    @classmethod
    def from_options(cls, options: Any) -> MetaServer:
        return cls(
            node_id=options["id"],
            peers=options["peers"],
            data_dir=options["data"],
            admin_address=options["admin"],
            fsync=options["fsync"],
            tick_ms=options["tick-ms"],
            election_ticks=options["election-ticks"],
            timeout=options["timeout"],
            snapshot_entries=options["snapshot-entries"],
        )

    def addresses(self) -> dict[int, str]:
        """Member id -> peer address: ``--peers``, then what membership
        changes recorded in the replicated state."""
        known = dict(enumerate(self.peers))
        if self.app is not None:
            known.update(self.app.addresses)
        return known

    def startService(self) -> None:
        try:
            self.storage = LevelDBStorage.open(
                self.data_dir,
                reactor=self.reactor,
                fsync=self.fsync,  # type: ignore[arg-type]
                conf=ConfState(tuple(range(len(self.peers)))),
            )
        except StorageError as e:
            log.critical("eraftmeta: cannot start: {e}", e=e)
            sys.stderr.write(f"eraftmeta: error: {e}\n")
            self.reactor.callWhenRunning(self._exit, 1)
            return
        app = self.app = MetaApplication(self.storage)
        config = Config(self.node_id, election_tick=self.election_ticks, heartbeat_tick=1)
        node = self.node = RaftNode(
            self.node_id,
            self.storage,
            app,
            self.reactor,
            config=config,
            tick_interval=self.tick_ms / 1000.0,
            request_timeout=self.timeout,
            snapshot_entries=self.snapshot_entries,
            keep_entries=min(1000, max(10, self.snapshot_entries // 4)),
            reactor=self.reactor,
        )
        others = {i: a for i, a in self.addresses().items() if i != self.node_id}
        transport = self.transport = PeerTransport(
            self.reactor, node, GROUP, others, node.report_unreachable
        )
        node.transport = transport
        node.on_member_address.append(transport.add_peer)
        node.on_conf_change.append(self._conf_changed)
        app.on_addresses.append(self._addresses_changed)

        self.site = Site(AdminAPI(node, app, self.addresses))
        self.site.displayTracebacks = False
        node.setServiceParent(self)
        transport.setServiceParent(self)
        strports.service(
            tcp_endpoint(self.peers[self.node_id]),
            MetaPeerServerFactory(node, GROUP, MetaAPI(node, app)),
        ).setServiceParent(self)
        strports.service(tcp_endpoint(self.admin_address), self.site).setServiceParent(self)
        log.info(
            "eraftmeta node {id} of {n}: peers on {peer}, admin API on http://{admin}, "
            "data in {data}",
            id=self.node_id,
            n=len(self.peers),
            peer=self.peers[self.node_id],
            admin=self.admin_address,
            data=os.path.abspath(self.data_dir),
        )
        super().startService()

    def _conf_changed(self, entry: Any) -> None:
        cc, _ = decode_conf_change(entry.data)
        if cc.type == ConfChangeType.REMOVE and cc.node_id != self.node_id and self.transport:
            self.transport.remove_peer(cc.node_id)

    def _addresses_changed(self, addresses: dict[int, str]) -> None:
        if self.transport is not None:
            for nid, address in addresses.items():
                self.transport.add_peer(nid, address)

    def _exit(self, code: int) -> None:
        from twisted.internet import reactor as default_reactor

        if self.reactor is default_reactor:
            os._exit(code)

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        yield super().stopService()
        if self.storage is not None:
            yield self.storage.close()
