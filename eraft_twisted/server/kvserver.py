"""One KV node: storage, the Raft node, peer links, and the RESP service."""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.application.internet import TimerService
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from .. import REDIS_VERSION
from ..hashslot import SLOTS
from ..kv.app import KVApplication
from ..kv.statemachine import Op, encode_op
from ..kv.store import KVStore
from ..node.errors import REJOIN
from ..node.group import RaftGroupServer
from ..raft.types import NONE
from ..resp.client import RespClientPool
from ..resp.commands import CommandError, CommandTable
from ..resp.connection import register_connection_commands
from ..resp.encoder import Verbatim
from ..resp.protocol import MAX_CLIENTS, RespServerFactory
from ..resp.state import ConnectionState
from ..rpc.commands import ChangeMembership
from ..rpc.metaclient import AMPMetaClient
from ..shard.migration import ShardDriver
from ..shard.statemachine import ShardedStateMachine
from .admin import ConfigCommands, RaftAdmin
from .blocking import BlockingPops
from .cluster import ClusterCommands, Shard, ShardNode, node_name
from .datacmd import DataCommands
from .garbage import GarbageCollector
from .hashes import HashCommands
from .info import InfoBuilder, Progress, raft_fields
from .keys import KeyCommands
from .lists import ListCommands
from .migration import MigrationCommands
from .seams import Answer, ClientLimits, NodeSettings, RaftStatus
from .sets import SetCommands
from .strings import KVCommands
from .transactions import Transactions
from .zsets import SortedSetCommands

SWEEP_INTERVAL = 0.05
"""Seconds between the leader's looks at the expiry index: how late, at
most, a key expires besides the commit of its deletion (a look that finds
nothing expired costs nothing)."""

log = Logger()

T = TypeVar("T")


class KVServer(RaftGroupServer):
    """Everything one ``twistd eraftkv`` process runs: a shard group member
    serving RESP (and, with ``--meta``, following the cluster configs)."""

    command = "eraftkv"

    def __init__(
        self,
        node_id: int,
        peers: list[str],
        data_dir: str,
        resp_address: str,
        group: str = "kv-1",
        max_bulk: int = 512 * 1024 * 1024,
        max_clients: int = MAX_CLIENTS,
        client_limits: ClientLimits | None = None,
        meta: list[str] | None = None,
        group_id: int = 1,
        **kw: Any,
    ) -> None:
        shard_group = group_id if meta else None  # sharded: the id follows the cluster's
        super().__init__(node_id, peers, data_dir, group, shard_group=shard_group, **kw)
        self.resp_address = resp_address
        self.max_bulk = max_bulk
        self.max_clients = max_clients
        # More RespServerFactory limits by keyword (max_request, output_limit, idle_timeout).
        self.client_limits: ClientLimits = client_limits or {}
        self.meta = meta or []
        self.group_id = group_id
        self.shard_driver: ShardDriver | None = None
        self._joined = False
        self._join_asking = False
        self._announcing = False

    store: KVStore
    """The applied data (made by :meth:`make_app` when the service starts)."""
    sm: ShardedStateMachine
    resp_factory: RespServerFactory

    @classmethod
    def from_options(cls, options: usage.Options) -> KVServer:
        return cls(
            resp_address=options["resp"],
            max_bulk=options["max-bulk"],
            max_clients=options["maxclients"],
            client_limits={
                "max_request": options["client-query-buffer-limit"],
                "output_limit": options["client-output-buffer-limit"],
                "idle_timeout": options["client-idle-timeout"],
            },
            group=f"kv-{options['group']}",
            join=bool(options["join"]),
            meta=options["meta"] or [],
            group_id=options["group"],
            **cls.group_options(options),
        )

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
            return [Shard([(0, SLOTS - 1)], mine)], me
        owned: dict[int, list[tuple[int, int]]] = {}
        for lo, hi, gid in shards.owner_ranges():
            owned.setdefault(gid, []).append((lo, hi))
        out = []
        for gid, servers in sorted(shards.groups.items()):
            if gid == shards.group:
                nodes = mine
            else:
                nodes = [
                    ShardNode(node_name(f"kv-{gid}", i), addr, i == 0)
                    for i, addr in enumerate(servers)
                ]
            out.append(Shard(owned.get(gid, []), nodes))
        return out, me

    def _start_sharding(self, table: CommandTable) -> None:
        """Sharded mode: serve only what the applied config gives us."""
        shards = self.app.sm.shards
        if not shards.sharded():
            # Deterministic on every member (same --group): nothing is
            # served until the first config is applied through the log.
            shards.group = self.group_id
        self.pool = RespClientPool(self.reactor, timeout=self.timeout)
        self.meta_client = AMPMetaClient(
            self.reactor, self.meta, timeout=self.timeout, identity=self.identity
        )
        TimerService(1.0, self.meta_client.identify).setServiceParent(self)
        self.shard_driver = ShardDriver(
            self.node,
            self.sm,
            self.group_id,
            self.meta_client,
            self.pool,
            self._servers,
            self.commands.now_ms,
        )
        MigrationCommands(self.node, self.sm, self.storage, self.commands.now_ms).register(table)
        TimerService(0.5, self.shard_driver.step).setServiceParent(self)

    def _announce(self) -> defer.Deferred[None] | None:
        """Record our RESP address in the replicated state (for CLUSTER
        SLOTS and redirections) whenever it is missing or changed."""
        if self._announcing or self.node.leader == NONE:
            return None
        if self.app.sm.resp_addresses.get(self.node_id) == self.resp_address:
            return None
        self._announcing = True
        op = encode_op(Op.MEMBER, self.commands.now_ms(), self.node_id, self.resp_address)
        d: defer.Deferred[object] = self.node.propose(op)

        def done(result: object) -> None:
            self._announcing = False

        return d.addBoth(done)

    def _ask_to_join(self) -> defer.Deferred[object] | None:
        """Until the leader has (re-)added us as a learner; then take part.

        The leader removes us first if we are still a member: a node that
        starts with an empty log has nothing it may have acknowledged."""
        # Ask only until we are in: once removed later, we must stay out.
        if self._joined or (
            self.node.raw is not None and self.node_id in self.node.raw.conf.members()
        ):
            self._joined = True
            self.node.admit()
            return None
        if self._join_asking:
            return None
        self._join_asking = True
        me = self.peers[self.node_id]

        def attempt(pids: list[int]) -> defer.Deferred[object] | None:
            if not pids:
                return None
            d: defer.Deferred[object] = self.transport.call(
                pids[0], ChangeMembership, kind=REJOIN, node_id=self.node_id, address=me
            )

            def joined(_: object) -> None:
                self._joined = True
                self.node.admit()
                log.info(
                    "joined the group as node {id} (a learner until caught up)", id=self.node_id
                )

            def failed(f: Failure) -> defer.Deferred[object] | None:
                if "already" in str(f.value):
                    joined(None)
                    return None
                return attempt(pids[1:])

            return d.addCallbacks(joined, failed)

        def done(result: T) -> T:
            self._join_asking = False
            return result

        d = attempt([i for i in range(len(self.peers)) if i != self.node_id])
        return d.addBoth(done) if d is not None else done(None)

    def make_app(self) -> KVApplication:
        self.store = KVStore(self.storage)
        self.store.load_expiry().addErrback(
            lambda f: log.failure("loading key expiry times failed", f)
        )
        self.sm = ShardedStateMachine(self.store)
        return KVApplication(self.store, self.sm)

    def describe(self) -> str:
        return f"peers on {self.peers[self.node_id]}, RESP on {self.resp_address}"

    def start_listeners(self) -> None:
        self.commands = KVCommands(self.node, self.store, self.reactor, self.sm)
        self.garbage = GarbageCollector(self.node, self.store, self.storage)
        table = CommandTable()
        self.resp_factory = RespServerFactory(
            table,
            max_bulk=self.max_bulk,
            max_clients=self.max_clients,
            clock=self.reactor,
            **self.client_limits,
        )
        settings = NodeSettings(self.resp_address, self.data_dir, self.fsync, bool(self.meta))
        self.info = InfoBuilder(
            clock=self.reactor,
            settings=settings,
            node=self.node,
            status=self._raft_status,
            addresses=self.addresses,
            identity=self.identity,
            sm=self.sm,
            store=self.store,
            storage=self.storage,
            clients=self.resp_factory.registry,
            migrations=self._migrations,
        )
        register_connection_commands(
            table, {"version": REDIS_VERSION, "role": "master", "mode": "standalone"}
        )
        self.data = DataCommands(self.node, self.sm, self.reactor)
        self.commands.register(table, self.data)
        for kind in (HashCommands, SetCommands, ListCommands, SortedSetCommands, KeyCommands):
            kind(self.data).register(table)
        BlockingPops(self.data, self.store, self.reactor).register(table)
        Transactions(self.node, self.sm, self.data, table).register()
        table.register("info", -1, ["readonly"], self._info, first_key=0, last_key=0)
        table.register("raft.info", 1, ["readonly"], self._raft_info, first_key=0, last_key=0)
        RaftAdmin(self.node).register(table)
        ConfigCommands(settings, self.resp_factory.client_settings).register(table)
        ClusterCommands(self._topology).register(table)
        self.listen(self.resp_address, self.resp_factory)
        TimerService(SWEEP_INTERVAL, self._sweep).setServiceParent(self)
        TimerService(1.0, self._announce).setServiceParent(self)
        if self.meta:
            self._start_sharding(table)
        self.node.lost_data_hint = (
            "restart it with --join to rejoin the group as a learner "
            "(with an empty data directory if it came from a backup)"
        )
        if self.join and self.storage.last_index() == 0:
            # Nothing in our log (new, or left by a start that found its data
            # lost): silent until the group has re-added us.
            self.node.awaiting_admission = True
            TimerService(1.0, self._ask_to_join).setServiceParent(self)

    def _sweep(self) -> defer.Deferred[object]:
        if self.node is None or not self.node.is_leader:
            return defer.succeed(None)
        now_ms = int(self.node.wall_clock() * 1000)
        d = self.commands.sweep_expired(now_ms)
        d.addErrback(lambda f: log.debug("expiry sweep failed: {f}", f=f.value))
        g = self.garbage.sweep(now_ms)
        g.addErrback(lambda f: log.debug("removing dead collection rows failed: {f}", f=f.value))
        return d

    def stopService(self) -> defer.Deferred[None]:
        if self.shard_driver is not None:
            self.pool.close()
            self.meta_client.close()
        d: defer.Deferred[None] = super().stopService()
        return d

    # -- admin commands --------------------------------------------------
    def _raft_status(self) -> RaftStatus:
        status: RaftStatus = self.node.raw.status()
        return status

    def _migrations(self) -> Progress:
        return self.shard_driver.progress if self.shard_driver is not None else {}

    def _info(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        if len(argv) > 2:
            raise CommandError("syntax error")
        section = argv[1].lower() if len(argv) == 2 else None
        if section not in (None, b"all", b"everything", b"default", b"keyspace"):
            return Verbatim(self.info.info(section, None))
        keys_d = self.store.count_types(self.commands.log_time_ms())
        return keys_d.addCallback(lambda n: Verbatim(self.info.info(section, n)))

    def _raft_info(self, conn: ConnectionState, argv: list[bytes]) -> Verbatim:
        fields = raft_fields(self._raft_status(), self.addresses(), self.identity)
        return Verbatim("# Raft\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields))


__all__ = ["KVServer"]
