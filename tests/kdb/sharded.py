"""A whole sharded deployment as real processes: meta group, kv groups, router."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import redis

from eraft_twisted.testing.procs import (
    MetaProcess,
    RouterProcess,
    admin_call,
    tail_log,
)
from tests.procs import Cluster, Node, free_ports
from tests.waiting import wait_until


class Deployment:
    """3 meta nodes, ``groups`` kv groups of 3, one router, in a temp dir."""

    def __init__(self, base: str | None = None) -> None:
        self.dir = base or tempfile.mkdtemp(prefix="eraft-sharded-")
        ports = free_ports(7)
        self.meta_peers = [f"127.0.0.1:{p}" for p in ports[:3]]
        self.meta_admin = [f"127.0.0.1:{p}" for p in ports[3:6]]
        self.router_port = ports[6]
        self.meta = [
            MetaProcess(
                i,
                self.meta_peers,
                ports[3 + i],
                os.path.join(self.dir, f"meta{i}"),
                ["--tick-ms", "50"],
            )
            for i in range(3)
        ]
        self.groups: dict[int, Cluster] = {}
        self.router = RouterProcess(self.router_port, self.meta_peers, self.dir, [])

    def start_meta(self) -> None:
        for p in self.meta:
            p.start()
        self.wait(lambda: self.admin("GET", "/config") is not None, "meta group up")

    def start_group(self, gid: int) -> Cluster:
        base = os.path.join(self.dir, f"group{gid}")
        os.makedirs(base)
        cluster = Cluster(
            3,
            extra=["--tick-ms", "50", "--meta", ",".join(self.meta_peers), "--group", str(gid)],
            base=base,
        )
        self.groups[gid] = cluster
        cluster.start()
        return cluster

    def start_router(self) -> None:
        self.router.start()
        self.router.wait_up(60)

    def client(self, timeout: float = 10.0) -> redis.Redis:
        return redis.Redis(
            port=self.router_port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def admin(self, method: str, path: str, body: object = None) -> Any:
        """Call the meta HTTP API on any node that answers."""
        for addr in self.meta_admin:
            try:
                return admin_call(addr, method, path, body, timeout=10)
            except OSError:
                continue
        return None

    def admin_addrs(self) -> list[str]:
        return list(self.meta_admin)

    def info(self, node: Node, section: str) -> dict[str, str]:
        text = node.client().info(section)
        return {k: str(v) for k, v in text.items()}

    def settled(self, num: int) -> bool:
        """Every group applied config ``num`` and has nothing in flight."""
        for cluster in self.groups.values():
            leader = cluster.leader()
            info = self.info(leader, "sharding")
            if int(info.get("shard_config", 0)) < num:
                return False
            if info.get("shard_incoming") or info.get("shard_release_pending"):
                return False
        return True

    @staticmethod
    def wait(predicate: Callable[[], object], what: str, timeout: float = 60.0) -> None:
        """Wait until ``predicate()`` is true; fail the test after ``timeout`` s."""
        wait_until(predicate, timeout, message=what)

    def stop(self) -> None:
        self.router.stop()
        for cluster in self.groups.values():
            cluster.stop()
        for p in self.meta:
            p.stop()

    keep = False
    """Set to keep the directory (data and logs) when the test failed."""

    def cleanup(self) -> None:
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def start_one_group(self) -> None:
        """The meta group, kv group 1 (owning every slot) and the router."""
        self.start_meta()
        self.start_group(1)
        self.wait(lambda: self.settled(1), "group 1 registered")
        self.start_router()

    # -- more steps, for the restart tests ---------------------------------------
    def join(self, gid: int) -> Cluster:
        """Start kv group ``gid`` and wait until the latest config lists it."""
        cluster = self.start_group(gid)
        self.wait(lambda: str(gid) in self.admin("GET", "/config")["groups"], f"group {gid} joined")
        return cluster

    def settle(self, what: str, timeout: float = 120.0) -> int:
        """Wait until every group applied the latest config and moved its data."""
        num = int(self.admin("GET", "/config")["num"])
        self.wait(lambda: self.settled(num), f"config {num} settled ({what})", timeout)
        return num

    def rebalance(self, timeout: float = 120.0) -> int:
        """``POST /rebalance`` and wait until the data has moved; the config number."""
        if self.admin("POST", "/rebalance", {}) is None:
            raise AssertionError("POST /rebalance failed on every meta node")
        return self.settle("rebalance", timeout)

    def move(self, lo: int, hi: int, group: int) -> int:
        """``POST /move`` (returns at once); the new config number."""
        if self.admin("POST", "/move", {"lo": lo, "hi": hi, "group": group}) is None:
            raise AssertionError(f"POST /move {lo}-{hi} to {group} failed on every meta node")
        return int(self.admin("GET", "/config")["num"])

    def leader(self, gid: int) -> Node:
        return self.groups[gid].leader()

    def dbsizes(self) -> dict[int, int]:
        """Each group's DBSIZE, asked of its leader."""
        return {gid: int(self.leader(gid).client().dbsize()) for gid in self.groups}

    def stop_meta(self) -> None:
        for p in self.meta:
            p.stop()

    def restart_router(self) -> None:
        self.router.stop()
        self.start_router()

    def restart_all(self) -> None:
        """SIGTERM every process, then start them all again on the same data
        directories: the meta group, every kv group, the router."""
        self.stop()
        self.start_meta()
        nodes = [node for cluster in self.groups.values() for node in cluster.nodes]
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_up()
        self.start_router()

    def tails(self, n: int = 25) -> str:
        """The last lines of every process's log, for a failure message."""
        logs = [(f"meta{i}", p.log_path) for i, p in enumerate(self.meta)]
        for gid, cluster in sorted(self.groups.items()):
            logs += [(f"group {gid} node {n.node_id}", n.log_path) for n in cluster.nodes]
        logs.append(("router", self.router.log_path))
        return "\n".join(f"--- {name}: {path}\n{tail_log(path, n)}" for name, path in logs)
