"""INFO and RAFT.INFO text, in Redis's ``# Section`` / ``key:value`` form."""

from __future__ import annotations

import os
import time
from typing import Any

from .. import REDIS_VERSION, __version__

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


def _fmt(section: str, fields: list[tuple[str, Any]]) -> str:
    lines = [f"# {section.capitalize() if section != 'raft' else 'Raft'}"]
    lines += [f"{k}:{v}" for k, v in fields]
    return "\r\n".join(lines) + "\r\n"


def raft_fields(
    status: dict[str, Any], addresses: dict[int, str], identity: Any = None
) -> list[tuple[str, Any]]:
    """The ``# Raft`` section: this node (and its group and cluster ids),
    the leader and every member."""
    leader = status["leader"]
    fields: list[tuple[str, Any]] = [
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

    def __init__(self, server: Any) -> None:
        self.server = server
        self.started = time.time()

    def info(self, section: bytes | None, keyspace_keys: int | None) -> str:
        name = section.decode("latin-1").lower() if section else ""
        wanted: tuple[str, ...]
        if section in (None, b"all", b"everything", b"default"):
            wanted = SECTIONS
        else:
            wanted = (name,) if name in SECTIONS else ()
        out = []
        for s in wanted:
            fields = getattr(self, "_" + s)(keyspace_keys)
            if fields is not None:
                out.append(_fmt(s, fields))
        return "\r\n".join(out)

    def _server(self, _: Any) -> list[tuple[str, Any]]:
        srv = self.server
        host, _, port = srv.resp_address.rpartition(":")
        return [
            ("redis_version", REDIS_VERSION),
            ("eraft_version", __version__),
            ("redis_mode", "standalone"),
            ("os", os.uname().sysname),
            ("process_id", os.getpid()),
            ("tcp_port", port),
            ("uptime_in_seconds", int(time.time() - self.started)),
            ("executable", "twistd eraftkv"),
            ("data_dir", os.path.abspath(srv.data_dir)),
        ]

    def _clients(self, _: Any) -> list[tuple[str, Any]]:
        return [("connected_clients", len(self.server.resp_factory.registry))]

    def _persistence(self, _: Any) -> list[tuple[str, Any]]:
        w = self.server.storage.writer.stats
        return [
            ("fsync", self.server.fsync),
            ("write_batches", w.batches),
            ("synced_batches", w.synced_batches),
            ("largest_group_commit", w.largest_group),
            ("slow_writes", w.slow_writes),
            ("pending_applied_writes", self.server.store.pending_count()),
            # The clock of expiry, and how far this node's clock is from it
            # (a large value on the leader means keys expire that much off).
            ("log_time_ms", self.server.app.sm.log_time),
            (
                "clock_ahead_of_log_time_ms",
                int(self.server.node.wall_clock() * 1000) - self.server.app.sm.log_time,
            ),
        ]

    def _stats(self, _: Any) -> list[tuple[str, Any]]:
        st = self.server.node.stats
        return [
            ("total_proposals", st["proposals"]),
            ("total_reads", st["reads"]),
            ("read_index_rounds", st["read_rounds"]),
            ("raft_readies", st["readies"]),
        ]

    def _replication(self, _: Any) -> list[tuple[str, Any]]:
        node = self.server.node
        return [("role", "master" if node.is_leader else "slave")]

    def _raft(self, _: Any) -> list[tuple[str, Any]]:
        srv = self.server
        return raft_fields(srv.node.raw.status(), srv.addresses(), srv.identity)

    def _sharding(self, _: Any) -> list[tuple[str, Any]]:
        shards = self.server.app.sm.shards
        if not shards.sharded():
            return [("shard_mode", "single-group")]

        def runs(table: dict[int, tuple[int, int]]) -> str:
            return ",".join(f"{lo}-{hi}:g{g}@{n}" for lo, hi, g, n in shards.runs(table))

        fields: list[tuple[str, Any]] = [
            ("shard_mode", "sharded"),
            ("shard_group", shards.group),
            # The leader drives (and counts) the copies; followers only apply them.
            ("shard_leader", int(bool(self.server.node.is_leader))),
            ("shard_config", shards.num),
            ("shard_slots_served", shards.slots_served()),
            ("shard_incoming", runs(shards.incoming)),
            ("shard_outgoing", runs(shards.outgoing)),
            ("shard_release_pending", runs(shards.notify)),
        ]
        driver = self.server.shard_driver
        for (num, lo, hi), p in sorted((driver.progress if driver else {}).items()):
            state = f"config={num},keys={p['keys']},bytes={p['bytes']},done={p.get('done', 0)}"
            fields.append((f"migration_{lo}_{hi}", state))
        return fields

    def _keyspace(self, keys: int | None) -> list[tuple[str, Any]] | None:
        if not keys:
            return []
        expires = self.server.store.expiring_count() if self.server.store is not None else 0
        return [("db0", f"keys={keys},expires={expires},avg_ttl=0")]
