"""One KV node: storage, the Raft node, peer links, and the RESP service."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from ..node.driver import RaftNode
from ..raft.confchange import decode_conf_change
from ..raft.core import Config
from ..raft.types import NONE, ConfChangeType, ConfState
from ..resp.client import RespClientPool
from ..resp.commands import CommandError, CommandTable, register_connection_commands
from ..resp.encoder import SimpleString, Verbatim
from ..resp.protocol import RespServerFactory
from ..rpc.commands import ChangeMembership
from ..rpc.metaclient import AMPMetaClient
from ..rpc.transport import PeerServerFactory, PeerTransport, parse_address
from ..storage.leveldb import LevelDBStorage, StorageError
from .admin import RaftAdmin
from .app import KVApplication
from .cluster import ClusterCommands, Shard, ShardNode, node_name
from .commands import KVCommands
from .info import InfoBuilder, raft_fields
from .migration import MigrationCommands, ShardDriver
from .shards import ranges_of
from .statemachine import Op, encode_op
from .store import KVStore

log = Logger()


def tcp_endpoint(address: str) -> str:
    """``host:port`` -> a listening endpoint string."""
    host, port = parse_address(address)
    return f"tcp:{port}:interface={host}"


class KVServer(MultiService):
    """Everything one ``twistd eraftkv`` process runs, started in order and
    stopped in reverse: listeners first, then the node, then the disk."""

    def __init__(
        self,
        node_id: int,
        peers: list[str],
        data_dir: str,
        resp_address: str,
        reactor: Any = None,
        fsync: str = "always",
        tick_ms: int = 100,
        election_ticks: int = 10,
        timeout: float = 5.0,
        max_bulk: int = 512 * 1024 * 1024,
        group: str = "kv-1",
        snapshot_entries: int = 10_000,
        join: bool = False,
        meta: list[str] | None = None,
        group_id: int = 1,
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.node_id = node_id
        self.peers = peers
        self.data_dir = data_dir
        self.resp_address = resp_address
        self.fsync = fsync
        self.tick_ms = tick_ms
        self.election_ticks = election_ticks
        self.timeout = timeout
        self.max_bulk = max_bulk
        self.group = group
        self.snapshot_entries = snapshot_entries
        self.join = join
        self.meta = meta or []
        self.group_id = group_id
        self.shard_driver: ShardDriver | None = None
        self._joined = False
        self._announcing = False
        self.app: Any = None
        self.storage: Any = None
        self.node: Any = None
        self.store: Any = None
        self.resp_factory: Any = None

    @classmethod
    def from_options(cls, options: Any) -> KVServer:
        return cls(
            node_id=options["id"],
            peers=options["peers"],
            data_dir=options["data"],
            resp_address=options["resp"],
            fsync=options["fsync"],
            tick_ms=options["tick-ms"],
            election_ticks=options["election-ticks"],
            timeout=options["timeout"],
            max_bulk=options["max-bulk"],
            group=f"kv-{options['group']}",
            snapshot_entries=options["snapshot-entries"],
            join=bool(options["join"]),
            meta=options["meta"] or [],
            group_id=options["group"],
        )

    def addresses(self) -> dict[int, str]:
        """Member id -> peer address: ``--peers``, then what membership
        changes recorded in the replicated state."""
        known = dict(enumerate(self.peers))
        if self.app is not None:
            known.update(self.app.addresses)
        return known

    def _member_resp(self) -> dict[int, str]:
        resp = dict(self.app.sm.resp_addresses)
        resp[self.node_id] = self.resp_address
        return resp

    def _servers(self) -> list[str] | None:
        """Every member's RESP address, once all of them announced it."""
        resp = self._member_resp()
        members = self.node.raw.conf.members()
        if any(nid not in resp for nid in members):
            return None
        return [resp[nid] for nid in members]

    def _topology(self) -> tuple[list[Shard], str]:
        """The shards as clients should see them: this group alone owning
        every slot, or, in sharded mode, every group of the applied config."""
        raw = self.node.raw
        resp = self._member_resp()
        mine = [
            ShardNode(node_name(self.group, nid), resp[nid], nid == raw.leader)
            for nid in raw.conf.members()
            if nid in resp
        ]
        me = node_name(self.group, self.node_id)
        shards = self.app.sm.shards
        if not shards.sharded():
            return [Shard([(0, 16383)], mine)], me
        out = []
        for gid, servers in sorted(shards.groups.items()):
            owned = {s for s in range(16384) if shards.owners[s] == gid}
            if gid == shards.group:
                nodes = mine
            else:
                nodes = [
                    ShardNode(node_name(f"kv-{gid}", i), addr, i == 0)
                    for i, addr in enumerate(servers)
                ]
            out.append(Shard(ranges_of(owned), nodes))
        return out, me

    def _start_sharding(self, table: CommandTable) -> None:
        """Sharded mode: serve only what the applied config gives us."""
        shards = self.app.sm.shards
        if not shards.sharded():
            # Deterministic on every member (same --group): nothing is
            # served until the first config is applied through the log.
            shards.group = self.group_id
        self.pool = RespClientPool(self.reactor, timeout=self.timeout)
        self.meta_client = AMPMetaClient(self.reactor, self.meta, timeout=self.timeout)
        self.shard_driver = ShardDriver(
            self.node,
            self.app.sm,
            self.group_id,
            self.meta_client,
            self.pool,
            self._servers,
            self.commands.now_ms,
        )
        MigrationCommands(
            self.node, self.app.sm, self.storage, self.reactor, self.commands.now_ms
        ).register(table)
        TimerService(0.5, self.shard_driver.step).setServiceParent(self)

    def _announce(self) -> defer.Deferred[Any] | None:
        """Record our RESP address in the replicated state (for CLUSTER
        SLOTS and redirections) whenever it is missing or changed."""
        if self._announcing or self.node.leader == NONE:
            return None
        if self.app.sm.resp_addresses.get(self.node_id) == self.resp_address:
            return None
        self._announcing = True
        op = encode_op(Op.MEMBER, self.commands.now_ms(), self.node_id, self.resp_address)
        d = self.node.propose(op)

        def done(result: Any) -> None:
            self._announcing = False

        return d.addBoth(done)

    def _conf_changed(self, entry: Any) -> None:
        cc, _ = decode_conf_change(entry.data)
        if cc.type == ConfChangeType.REMOVE and cc.node_id != self.node_id:
            self.transport.remove_peer(cc.node_id)

    def _addresses_changed(self, addresses: dict[int, str]) -> None:
        for nid, address in addresses.items():
            self.transport.add_peer(nid, address)

    def _ask_to_join(self) -> defer.Deferred[Any] | None:
        """Until some member is the leader and adds us as a learner."""
        # Ask only until we are in: once removed later, we must stay out.
        if self._joined or (
            self.node.raw is not None and self.node_id in self.node.raw.conf.members()
        ):
            self._joined = True
            return None
        me = self.peers[self.node_id]
        kind = int(ConfChangeType.ADD_LEARNER)

        def attempt(pids: list[int]) -> defer.Deferred[Any] | None:
            if not pids:
                return None
            d = self.transport.call(
                pids[0], ChangeMembership, kind=kind, node_id=self.node_id, address=me
            )

            def joined(_: Any) -> None:
                self._joined = True
                log.info("joined the group as node {id}", id=self.node_id)

            def failed(f: Any) -> Any:
                if "already" in str(f.value):
                    return joined(None)
                return attempt(pids[1:])

            return d.addCallbacks(joined, failed)

        return attempt([i for i in range(len(self.peers)) if i != self.node_id])

    def startService(self) -> None:
        try:
            self.storage = LevelDBStorage.open(
                self.data_dir,
                reactor=self.reactor,
                fsync=self.fsync,  # type: ignore[arg-type]
                # A joining node starts with no members: the group adds it.
                conf=ConfState() if self.join else ConfState(tuple(range(len(self.peers)))),
            )
        except StorageError as e:
            log.critical("eraftkv: cannot start: {e}", e=e)
            sys.stderr.write(f"eraftkv: error: {e}\n")
            self.reactor.callWhenRunning(self._exit, 1)
            return
        reactor = self.reactor
        self.store = KVStore(self.storage, reactor)
        self.store.load_expiry().addErrback(
            lambda f: log.failure("loading key expiry times failed", f)
        )
        app = self.app = KVApplication(self.store)
        app.load_addresses()
        app.sm.load_members()
        config = Config(self.node_id, election_tick=self.election_ticks, heartbeat_tick=1)
        self.node = RaftNode(
            self.node_id,
            self.storage,
            app,
            reactor,
            config=config,
            tick_interval=self.tick_ms / 1000.0,
            request_timeout=self.timeout,
            snapshot_entries=self.snapshot_entries,
            keep_entries=min(1000, max(10, self.snapshot_entries // 4)),
            reactor=reactor,
        )
        others = {i: a for i, a in self.addresses().items() if i != self.node_id}
        transport = PeerTransport(
            reactor, self.node, self.group, others, self.node.report_unreachable
        )
        self.node.transport = transport
        self.transport = transport
        self.node.on_member_address.append(transport.add_peer)
        self.node.on_conf_change.append(self._conf_changed)
        app.on_addresses.append(self._addresses_changed)
        self.commands = KVCommands(self.node, self.store, reactor, app.sm)
        self.info = InfoBuilder(self)

        table = CommandTable()
        register_connection_commands(
            table, {"version": "7.2.0", "role": "master", "mode": "standalone"}
        )
        self.commands.register(table)
        table.register("info", -1, ["readonly"], self._info, first_key=0, last_key=0)
        table.register("raft.info", 1, ["readonly"], self._raft_info, first_key=0, last_key=0)
        RaftAdmin(self).register(table)
        ClusterCommands(self._topology).register(table)
        self.resp_factory = RespServerFactory(table, max_bulk=self.max_bulk)

        self.node.setServiceParent(self)
        transport.setServiceParent(self)
        strports.service(
            tcp_endpoint(self.peers[self.node_id]), PeerServerFactory(self.node, self.group)
        ).setServiceParent(self)
        strports.service(tcp_endpoint(self.resp_address), self.resp_factory).setServiceParent(self)
        TimerService(1.0, self._sweep).setServiceParent(self)
        TimerService(1.0, self._announce).setServiceParent(self)
        if self.meta:
            self._start_sharding(table)
        if self.join and self.storage.is_new:
            TimerService(1.0, self._ask_to_join).setServiceParent(self)
        log.info(
            "eraftkv node {id} of {n}: peers on {peer}, RESP on {resp}, data in {data}",
            id=self.node_id,
            n=len(self.peers),
            peer=self.peers[self.node_id],
            resp=self.resp_address,
            data=os.path.abspath(self.data_dir),
        )
        super().startService()

    def _exit(self, code: int) -> None:
        from twisted.internet import reactor as default_reactor

        if self.reactor is default_reactor:
            os._exit(code)

    def _sweep(self) -> defer.Deferred[Any]:
        if self.node is None or not self.node.is_leader:
            return defer.succeed(None)
        d = self.commands.sweep_expired()
        d.addErrback(lambda f: log.debug("expiry sweep failed: {f}", f=f.value))
        return d

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        yield super().stopService()
        if self.shard_driver is not None:
            self.pool.close()
            self.meta_client.close()
        if self.storage is not None:
            yield self.storage.close()

    # -- admin commands --------------------------------------------------
    def _info(self, conn: Any, argv: list[bytes]) -> Any:
        if len(argv) > 2:
            raise CommandError("syntax error")
        section = argv[1].lower() if len(argv) == 2 else None
        keys_d: Any = defer.succeed(None)
        if section in (None, b"all", b"everything", b"default", b"keyspace"):
            keys_d = self.store.count(self.commands.now_ms())
        return keys_d.addCallback(lambda n: Verbatim(self.info.info(section, n)))

    def _raft_info(self, conn: Any, argv: list[bytes]) -> Any:
        fields = raft_fields(self.node.raw.status(), self.addresses())
        return Verbatim("# Raft\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields))


__all__ = ["KVServer", "SimpleString"]
