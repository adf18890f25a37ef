"""A whole sharded deployment as real processes: meta group, kv groups, router."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

import redis

from eraft_twisted.testing.cluster_procs import admin_call
from eraft_twisted.testing.nemesis import tail_log
from tests.procs import TWISTD, Cluster, Node, free_ports, twistd_env


class Proc:
    """A twistd process with its own log."""

    def __init__(self, argv: list[str], log_path: str, cwd: str) -> None:
        self.argv = argv
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "--logfile", self.log_path, *self.argv],
            env=twistd_env(),
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Deployment:
    """3 meta nodes, ``groups`` kv groups of 3, one router, in a temp dir."""

    def __init__(self, base: str | None = None) -> None:
        self.dir = base or tempfile.mkdtemp(prefix="eraft-sharded-")
        ports = free_ports(7)
        self.meta_peers = [f"127.0.0.1:{p}" for p in ports[:3]]
        self.meta_admin = [f"127.0.0.1:{p}" for p in ports[3:6]]
        self.router_port = ports[6]
        self.meta = [
            Proc(
                [
                    "eraftmeta",
                    "--id",
                    str(i),
                    "--data",
                    os.path.join(self.dir, f"meta{i}"),
                    "--peers",
                    ",".join(self.meta_peers),
                    "--admin",
                    self.meta_admin[i],
                    "--tick-ms",
                    "50",
                ],
                os.path.join(self.dir, f"meta{i}.log"),
                self.dir,
            )
            for i in range(3)
        ]
        self.groups: dict[int, Cluster] = {}
        self.router = Proc(
            [
                "eraftkdb",
                "--listen",
                f"127.0.0.1:{self.router_port}",
                "--meta",
                ",".join(self.meta_peers),
            ],
            os.path.join(self.dir, "router.log"),
            self.dir,
        )

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
        self.wait(lambda: self.client().ping(), "router up")

    def client(self, timeout: float = 10.0) -> redis.Redis:
        return redis.Redis(
            port=self.router_port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
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
    def wait(predicate: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        last: Exception | None = None
        while time.time() < deadline:
            try:
                if predicate():
                    return
            except Exception as e:  # not up yet
                last = e
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what} ({last})")

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
