"""CLUSTER commands in Redis Cluster's format, so cluster-aware clients
(``redis-cli -c``, redis-py's ``RedisCluster``) can use the nodes directly.

A *shard* here is a Raft group: its leader is reported as the master and
the other members as replicas. Any member accepts any command (followers
forward writes and serve linearizable reads), so a client may use any of
them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..hashslot import SLOTS, key_hash_slot
from ..net import parse_address
from ..resp.commands import CommandTable
from ..resp.encoder import Verbatim
from ..resp.state import ConnectionState


def node_name(group: str, node_id: int) -> str:
    """A stable 40-hex-digit node id, as Redis Cluster uses."""
    return hashlib.sha1(f"{group}/{node_id}".encode()).hexdigest()


@dataclass
class ShardNode:
    """One member of a shard as clients see it."""

    name: str
    address: str
    master: bool


@dataclass
class Shard:
    """A Raft group and the slot ranges it serves."""

    ranges: list[tuple[int, int]]
    nodes: list[ShardNode] = field(default_factory=list)


Topology = Callable[[], tuple[list[Shard], str]]
"""Returns the shards and this node's name."""


class ClusterCommands:
    """CLUSTER KEYSLOT|INFO|SLOTS|SHARDS|NODES|MYID over a topology."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def register(self, table: CommandTable) -> None:
        table.register("cluster", -2, ["stale"], None, 0, 0, 0)
        sub = table.register_subcommand
        sub("cluster", "keyslot", 3, ["stale"], self.keyslot)
        sub("cluster", "info", 2, ["stale"], self.info)
        sub("cluster", "slots", 2, ["stale"], self.slots)
        sub("cluster", "shards", 2, ["stale"], self.shards)
        sub("cluster", "nodes", 2, ["stale"], self.nodes)
        sub("cluster", "myid", 2, ["stale"], self.myid)

    def keyslot(self, conn: ConnectionState, argv: list[bytes]) -> int:
        return key_hash_slot(argv[2])

    def myid(self, conn: ConnectionState, argv: list[bytes]) -> str:
        return self.topology()[1]

    def info(self, conn: ConnectionState, argv: list[bytes]) -> Verbatim:
        shards, _ = self.topology()
        assigned = sum(hi - lo + 1 for s in shards for lo, hi in s.ranges)
        known = sum(len(s.nodes) for s in shards)
        state = "ok" if assigned == SLOTS else "fail"
        lines = [
            f"cluster_state:{state}",
            f"cluster_slots_assigned:{assigned}",
            f"cluster_slots_ok:{assigned}",
            "cluster_slots_pfail:0",
            "cluster_slots_fail:0",
            f"cluster_known_nodes:{known}",
            f"cluster_size:{sum(1 for s in shards if s.ranges)}",
            "cluster_current_epoch:1",
            "cluster_my_epoch:1",
        ]
        return Verbatim("\r\n".join(lines) + "\r\n")

    @staticmethod
    def _endpoint(node: ShardNode) -> tuple[str, int]:
        host, port = parse_address(node.address)
        return host, port

    def slots(
        self, conn: ConnectionState, argv: list[bytes]
    ) -> list[list[int | list[bytes | int]]]:
        shards, _ = self.topology()
        out: list[list[int | list[bytes | int]]] = []
        for shard in shards:
            ordered = sorted(shard.nodes, key=lambda n: not n.master)
            for lo, hi in shard.ranges:
                entry: list[int | list[bytes | int]] = [lo, hi]
                for node in ordered:
                    host, port = self._endpoint(node)
                    entry.append([host.encode(), port, node.name.encode()])
                out.append(entry)
        return out

    def shards(
        self, conn: ConnectionState, argv: list[bytes]
    ) -> list[dict[str, list[int] | list[dict[str, str | int]]]]:
        shards, _ = self.topology()
        out: list[dict[str, list[int] | list[dict[str, str | int]]]] = []
        for shard in shards:
            slots: list[int] = []
            for lo, hi in shard.ranges:
                slots += [lo, hi]
            nodes: list[dict[str, str | int]] = []
            for node in shard.nodes:
                host, port = self._endpoint(node)
                nodes.append(
                    {
                        "id": node.name,
                        "port": port,
                        "ip": host,
                        "endpoint": host,
                        "role": "master" if node.master else "replica",
                        "replication-offset": 0,
                        "health": "online",
                    }
                )
            out.append({"slots": slots, "nodes": nodes})
        return out

    def nodes(self, conn: ConnectionState, argv: list[bytes]) -> Verbatim:
        shards, me = self.topology()
        lines = []
        for shard in shards:
            master = next((n for n in shard.nodes if n.master), None)
            ranges = " ".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in shard.ranges)
            for node in shard.nodes:
                host, port = self._endpoint(node)
                flags = ("myself," if node.name == me else "") + (
                    "master" if node.master else "slave"
                )
                parent = "-" if node.master or master is None else master.name
                slots = f" {ranges}" if node.master and ranges else ""
                lines.append(
                    f"{node.name} {host}:{port}@{_bus_port(port)} {flags} {parent} 0 0 1 connected"
                    + slots
                )
        return Verbatim("\n".join(lines) + "\n")


def _bus_port(port: int) -> int:
    """Redis Cluster's conventional bus port (there is no bus here); 0
    where port + 10000 would not be a port."""
    return port + 10000 if port + 10000 <= 65535 else 0
