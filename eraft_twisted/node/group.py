"""One member of a Raft group as a twistd service, shared by ``eraftkv``
and ``eraftmeta``: storage opened in ``startService``, the Raft node and
its peer links, member addresses kept in step with membership changes,
and an orderly stop (listeners, then the node, then the disk)."""

from __future__ import annotations

import os
import random
import sys
from typing import Any

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from ..net import tcp_endpoint
from ..raft.confchange import decode_conf_change
from ..raft.core import Config
from ..raft.types import ConfChangeType, ConfState
from ..rpc.identity import KV, IdentityError, load_identity
from ..rpc.transport import PeerServerFactory, PeerTransport
from ..storage.leveldb import LevelDBStorage, StorageError
from .driver import RaftNode

log = Logger()


class RaftGroupServer(MultiService):
    """A group member: subclasses build the application and their listeners."""

    command = "eraft"
    kind = KV
    """Which kind of group (``kv``/``meta``): part of the group id."""
    rng: random.Random | None = None
    """The Raft node's randomness (election timeouts); a seeded one makes a
    simulated cluster repeatable."""

    def __init__(
        self,
        node_id: int,
        peers: list[str],
        data_dir: str,
        group: str,
        reactor: Any = None,
        fsync: str = "always",
        tick_ms: int = 100,
        election_ticks: int = 10,
        timeout: float = 5.0,
        snapshot_entries: int = 10_000,
        snapshot_bytes: int = 64 << 20,
        join: bool = False,
        shard_group: int | None = None,
        group_token: str = "",
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.node_id = node_id
        self.peers = peers
        self.data_dir = data_dir
        self.group = group
        self.fsync = fsync
        self.tick_ms = tick_ms
        self.election_ticks = election_ticks
        self.timeout = timeout
        self.snapshot_entries = snapshot_entries
        self.snapshot_bytes = snapshot_bytes
        self.join = join
        self.shard_group = shard_group
        self.group_token = group_token
        self.identity: Any = None
        self.storage: Any = None
        self.app: Any = None
        self.node: Any = None
        self.transport: Any = None

    @staticmethod
    def group_options(options: Any) -> dict[str, Any]:
        """The constructor arguments every group member takes from its options."""
        return {
            "node_id": options["id"],
            "peers": options["peers"],
            "data_dir": options["data"],
            "fsync": options["fsync"],
            "tick_ms": options["tick-ms"],
            "election_ticks": options["election-ticks"],
            "timeout": options["timeout"],
            "snapshot_entries": options["snapshot-entries"],
            "snapshot_bytes": options["snapshot-bytes"],
            "group_token": options["group-token"],
        }

    # -- hooks -------------------------------------------------------------
    def make_app(self) -> Any:
        """The replicated state machine (with ``addresses`` and ``on_addresses``)."""
        raise NotImplementedError

    def peer_factory(self) -> Factory:
        """What answers on the peer port."""
        return PeerServerFactory(self.node, self.identity)

    def start_listeners(self) -> None:
        """Add the client-facing services (they start after the node)."""

    def describe(self) -> str:
        return f"peers on {self.peers[self.node_id]}"

    # -- the member ----------------------------------------------------------
    def addresses(self) -> dict[int, str]:
        """Member id -> peer address: ``--peers``, then what membership
        changes recorded in the replicated state."""
        known = dict(enumerate(self.peers))
        if self.app is not None:
            known.update(self.app.addresses)
        return known

    def startService(self) -> None:
        try:
            # A joining node starts with no members: the group adds it.
            self.storage = self.open_storage(
                ConfState() if self.join else ConfState(tuple(range(len(self.peers))))
            )
            self.identity = load_identity(
                self.storage,
                self.kind,
                self.node_id,
                [f"token:{self.group_token}"] if self.group_token else self.peers,
                join=self.join,
                shard_group=self.shard_group,
            )
        except (StorageError, IdentityError) as e:
            if self.storage is not None:
                self.storage.close()
                self.storage = None
            log.critical("{cmd}: cannot start: {e}", cmd=self.command, e=e)
            sys.stderr.write(f"{self.command}: error: {e}\n")
            self.reactor.callWhenRunning(self._exit, 1)
            return
        app = self.app = self.make_app()
        config = Config(
            self.node_id, election_tick=self.election_ticks, heartbeat_tick=1, joining=self.join
        )
        node = self.node = RaftNode(
            self.node_id,
            self.storage,
            app,
            self.reactor,
            config=config,
            tick_interval=self.tick_ms / 1000.0,
            request_timeout=self.timeout,
            snapshot_entries=self.snapshot_entries,
            snapshot_bytes=self.snapshot_bytes,
            keep_entries=min(1000, max(10, self.snapshot_entries // 4)),
            reactor=self.reactor,
            rng=self.rng,
        )
        others = {i: a for i, a in self.addresses().items() if i != self.node_id}
        transport = self.transport = self.make_transport(node, others)
        node.transport = transport
        node.on_member_address.append(transport.add_peer)
        node.fail_stop_hook = self._fail_stop
        node.on_conf_change.append(self._conf_changed)
        app.on_addresses.append(self._addresses_changed)
        node.setServiceParent(self)
        transport.setServiceParent(self)
        self.listen(self.peers[self.node_id], self.peer_factory())
        self.start_listeners()
        for service in self:
            # Timers run on this member's reactor (a simulated clock in tests).
            if isinstance(service, TimerService) and service.clock is None:
                service.clock = self.reactor
        log.info(
            "{cmd} node {id} of {n}: {what}, data in {data}, {ident}",
            cmd=self.command,
            id=self.node_id,
            n=len(self.peers),
            what=self.describe(),
            data=os.path.abspath(self.data_dir),
            ident=self.identity.describe(),
        )
        super().startService()

    # -- what a test harness replaces (an in-process cluster) ----------------
    def open_storage(self, conf: ConfState) -> LevelDBStorage:
        """This member's storage: LevelDB in ``data_dir`` (blocks while it opens)."""
        return LevelDBStorage.open(
            self.data_dir,
            reactor=self.reactor,
            fsync=self.fsync,  # type: ignore[arg-type]
            conf=conf,
        )

    def make_transport(self, node: RaftNode, others: dict[int, str]) -> PeerTransport:
        """The links to the other members (AMP over TCP)."""
        return PeerTransport(self.reactor, node, self.identity, others, node.report_unreachable)

    def listen(self, address: str, factory: IProtocolFactory) -> None:
        """Serve ``factory`` on ``host:port`` while this service runs."""
        strports.service(tcp_endpoint(address), factory, self.reactor).setServiceParent(self)

    def _conf_changed(self, entry: Any) -> None:
        cc, _ = decode_conf_change(entry.data)
        if cc.type == ConfChangeType.REMOVE and cc.node_id != self.node_id:
            self.transport.remove_peer(cc.node_id)

    def _addresses_changed(self, addresses: dict[int, str]) -> None:
        for nid, address in addresses.items():
            self.transport.add_peer(nid, address)

    def _fail_stop(self, reason: str) -> None:
        """The node stopped on a fatal error: say why on stderr, exit 1 now."""
        # sys.stderr is twistd's log by now (the node logged the line there).
        err = sys.__stderr__
        if err is not None:
            err.write(f"{self.command}: fatal: {reason}\n")
            err.flush()
        self._exit(1)

    def _exit(self, code: int) -> None:
        from twisted.internet import reactor as default_reactor

        if self.reactor is default_reactor:
            os._exit(code)

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        yield super().stopService()
        if self.storage is not None:
            yield self.storage.close()
