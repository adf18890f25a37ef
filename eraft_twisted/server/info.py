"""INFO and RAFT.INFO text, in Redis's ``# Section`` / ``key:value`` form."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sized

from twisted.internet.interfaces import IReactorTime

from .. import REDIS_VERSION, __version__
from ..kv.records import TYPE_NAMES, KeyType
from ..kv.store import KVStore
from ..rpc.identity import Identity
from ..shard.statemachine import ShardedStateMachine
from ..storage.leveldb import LevelDBStorage
from .seams import NodeSettings, NodeStats, RaftStatus

Field = tuple[str, str | int]
"""One ``name:value`` line of a section."""

Progress = Mapping[tuple[int, int, int], Mapping[str, int]]
"""The migration driver's ``(num, lo, hi) -> keys/bytes/done`` counts."""

SECTIONS = (
    "server",
    "clients",
    "persistence",
    "stats",
    "replication",
    "raft",
    "sharding",
    "keyspace",
)


def _fmt(section: str, fields: list[Field]) -> str:
    lines = [f"# {section.capitalize() if section != 'raft' else 'Raft'}"]
    lines += [f"{k}:{v}" for k, v in fields]
    return "\r\n".join(lines) + "\r\n"


def raft_fields(
    status: RaftStatus, addresses: Mapping[int, str], identity: Identity | None = None
) -> list[Field]:
    """The ``# Raft`` section: this node (and its group and cluster ids),
    the leader and every member."""
    leader = status["leader"]
    fields: list[Field] = [
        ("raft_node_id", status["id"]),
        *(identity.info_fields() if identity is not None else []),
        ("raft_role", status["role"]),
        ("raft_term", status["term"]),
        ("raft_leader_id", leader if leader >= 0 else "none"),
        ("raft_leader_addr", addresses.get(leader, "") if leader >= 0 else ""),
        ("raft_commit_index", status["commit_index"]),
        ("raft_applied_index", status["applied_index"]),
        ("raft_first_index", status["first_index"]),
        ("raft_last_index", status["last_index"]),
        ("raft_voters", ",".join(map(str, status["voters"]))),
        ("raft_learners", ",".join(map(str, status["learners"]))),
        ("raft_num_members", len(status["voters"]) + len(status["learners"])),
    ]
    progress = status.get("progress") or {}
    members = sorted(set(status["voters"]) | set(status["learners"]))
    for i, nid in enumerate(members):
        role = "voter" if nid in status["voters"] else "learner"
        parts = [f"id={nid}", f"addr={addresses.get(nid, '')}", f"role={role}"]
        if nid == status["id"]:
            parts.append("self=yes")
        pr = progress.get(nid)
        if pr is not None:
            lag = max(0, status["last_index"] - pr["match"])
            parts += [f"match={pr['match']}", f"lag={lag}", f"state={pr['state']}"]
        fields.append((f"raft_member{i}", ",".join(parts)))
    return fields


class InfoBuilder:
    """Builds INFO output for one node from live objects."""

    def __init__(
        self,
        *,
        clock: IReactorTime,
        settings: NodeSettings,
        node: NodeStats,
        status: Callable[[], RaftStatus],
        addresses: Callable[[], Mapping[int, str]],
        identity: Identity | None,
        sm: ShardedStateMachine,
        store: KVStore,
        storage: LevelDBStorage,
        clients: Sized,
        migrations: Callable[[], Progress],
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.node = node
        self.status = status
        self.addresses = addresses
        self.identity = identity
        self.sm = sm
        """Read each time: a snapshot install replaces its ``shards``."""
        self.store = store
        self.storage = storage
        self.clients = clients
        """The RESP listener's connected clients."""
        self.migrations = migrations
        self.started = clock.seconds()

    def info(self, section: bytes | None, keyspace_keys: Mapping[KeyType, int] | None) -> str:
        name = section.decode("latin-1").lower() if section else ""
        wanted: tuple[str, ...]
        if section in (None, b"all", b"everything", b"default"):
            wanted = SECTIONS
        else:
            wanted = (name,) if name in SECTIONS else ()
        out = []
        for s in wanted:
            fields = self._section(s, keyspace_keys)
            if fields is not None:
                out.append(_fmt(s, fields))
        return "\r\n".join(out)

    def _section(
        self, name: str, keyspace_keys: Mapping[KeyType, int] | None
    ) -> list[Field] | None:
        if name == "keyspace":
            return self._keyspace(keyspace_keys)
        builders: dict[str, Callable[[], list[Field]]] = {
            "server": self._server,
            "clients": self._clients,
            "persistence": self._persistence,
            "stats": self._stats,
            "replication": self._replication,
            "raft": self._raft,
            "sharding": self._sharding,
        }
        return builders[name]()

    def _server(self) -> list[Field]:
        settings = self.settings
        _, _, port = settings.resp_address.rpartition(":")
        return [
            ("redis_version", REDIS_VERSION),
            ("eraft_version", __version__),
            ("redis_mode", "standalone"),
            ("os", os.uname().sysname),
            ("process_id", os.getpid()),
            ("tcp_port", port),
            ("uptime_in_seconds", int(self.clock.seconds() - self.started)),
            ("executable", "twistd eraftkv"),
            ("data_dir", os.path.abspath(settings.data_dir)),
        ]

    def _clients(self) -> list[Field]:
        return [("connected_clients", len(self.clients))]

    def _persistence(self) -> list[Field]:
        w = self.storage.writer.stats
        log_time = self.sm.log_time
        return [
            ("fsync", self.settings.fsync),
            ("write_batches", w.batches),
            ("synced_batches", w.synced_batches),
            ("largest_group_commit", w.largest_group),
            ("slow_writes", w.slow_writes),
            ("pending_applied_writes", self.store.pending_count()),
            # The clock of expiry, and how far this node's clock is from it
            # (a large value on the leader means keys expire that much off).
            ("log_time_ms", log_time),
            ("clock_ahead_of_log_time_ms", int(self.node.wall_clock() * 1000) - log_time),
        ]

    def _stats(self) -> list[Field]:
        st = self.node.stats
        return [
            ("total_proposals", st["proposals"]),
            ("total_reads", st["reads"]),
            ("read_index_rounds", st["read_rounds"]),
            ("raft_readies", st["readies"]),
        ]

    def _replication(self) -> list[Field]:
        return [("role", "master" if self.node.is_leader else "slave")]

    def _raft(self) -> list[Field]:
        return raft_fields(self.status(), self.addresses(), self.identity)

    def _sharding(self) -> list[Field]:
        shards = self.sm.shards
        if not shards.sharded():
            return [("shard_mode", "single-group")]

        def runs(table: dict[int, tuple[int, int]]) -> str:
            return ",".join(f"{lo}-{hi}:g{g}@{n}" for lo, hi, g, n in shards.runs(table))

        fields: list[Field] = [
            ("shard_mode", "sharded"),
            ("shard_group", shards.group),
            # The leader drives (and counts) the copies; followers only apply them.
            ("shard_leader", int(bool(self.node.is_leader))),
            ("shard_config", shards.num),
            ("shard_slots_served", shards.slots_served()),
            ("shard_incoming", runs(shards.incoming)),
            ("shard_outgoing", runs(shards.outgoing)),
            ("shard_release_pending", runs(shards.notify)),
        ]
        for (num, lo, hi), p in sorted(self.migrations().items()):
            state = f"config={num},keys={p['keys']},bytes={p['bytes']},done={p.get('done', 0)}"
            fields.append((f"migration_{lo}_{hi}", state))
        return fields

    def _keyspace(self, by_type: Mapping[KeyType, int] | None) -> list[Field] | None:
        keys = sum(by_type.values()) if by_type else 0
        if not keys or by_type is None:
            return []
        expires = self.store.expiring_count()
        types = ",".join(f"{TYPE_NAMES[t]}={n}" for t, n in sorted(by_type.items()))
        return [
            ("db0", f"keys={keys},expires={expires},avg_ttl=0"),
            ("db0_types", types),
        ]
