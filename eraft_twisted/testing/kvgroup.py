"""One Raft group of real ``twistd eraftkv`` processes, for tests and campaigns.

With ``proxies`` every peer link goes through a fault-injecting
:class:`~.proxy.ProxyNet`: node i's ``--peers`` list holds its own real
address and, for every other node j, the proxy link i->j.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Self

from .harness import poll_until
from .procs import NodeProcess, free_ports, raw_command
from .proxy import ProxyNet

__all__ = ["KVGroup"]


class KVGroup:
    """``n`` eraftkv processes in ``directory`` (default: a new temporary
    one), their peer links through a :class:`ProxyNet` (``proxies=True``)
    or direct; ``extra`` are every node's options."""

    def __init__(
        self,
        n: int = 3,
        directory: str | None = None,
        proxies: bool = True,
        extra: list[str] | None = None,
    ) -> None:
        self.n = n
        self.dir = directory or tempfile.mkdtemp(prefix="eraft-jepsen-")
        os.makedirs(self.dir, exist_ok=True)
        ports = free_ports(2 * n)
        real = [f"127.0.0.1:{p}" for p in ports[:n]]
        self.net = ProxyNet(n, real, os.path.join(self.dir, "proxy.log")) if proxies else None
        self.nodes: list[NodeProcess] = []
        args = extra or ["--tick-ms", "50"]
        if self.net is not None:
            # Each node reaches the others through its own proxies, so their
            # --peers lists differ: one token gives them one group id.
            args = [*args, "--group-token", f"jepsen-{ports[0]}"]
        for i in range(n):
            if self.net is not None:
                peers = [real[i] if j == i else self.net.address(i, j) for j in range(n)]
            else:
                peers = real
            data = os.path.join(self.dir, f"data{i}")
            self.nodes.append(NodeProcess(i, peers, ports[n + i], data, args))

    def start(self) -> Self:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_up()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.net is not None:
            self.net.close()

    def raft_info(self, node: NodeProcess, timeout: float = 1.0) -> dict[str, str]:
        """``RAFT.INFO`` of ``node`` as a dict (empty if it does not answer)."""
        try:
            raw = raw_command(node.resp_port, "RAFT.INFO", timeout=timeout)
        except OSError:
            return {}
        out = {}
        for line in raw.decode("latin-1").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                out[key.strip()] = value.strip()
        return out

    def current_leader(
        self, exclude: tuple[int, ...] = (), timeout: float = 0.5
    ) -> NodeProcess | None:
        """The node that says it is the leader right now, if any (no waiting)."""
        for node in self.nodes:
            if node.alive and not node.paused and node.node_id not in exclude:
                if self.raft_info(node, timeout).get("raft_role") == "leader":
                    return node
        return None

    def leader(self, timeout: float = 30.0, exclude: tuple[int, ...] = ()) -> NodeProcess:
        """A node that says it is the leader and is reachable (waits for one)."""
        leader = poll_until(
            lambda: self.current_leader(exclude, timeout=1.0), "a leader", timeout, interval=0.1
        )
        assert leader is not None
        return leader

    def heal(self) -> None:
        """Undo every fault: heal links, resume and restart every node."""
        if self.net is not None:
            self.net.heal()
        for node in self.nodes:
            if node.paused:
                node.resume()
            if not node.alive:
                node.start()
        for node in self.nodes:
            node.wait_up()

    def wait_healthy(self, timeout: float = 60.0) -> NodeProcess:
        """A leader, and a write that commits through every node."""
        deadline = time.monotonic() + timeout
        leader = self.leader(timeout)
        for node in self.nodes:
            poll_until(
                functools.partial(self._accepts_writes, node),
                f"node {node.node_id} to accept writes after heal",
                max(0.0, deadline - time.monotonic()),
            )
        return leader

    @staticmethod
    def _accepts_writes(node: NodeProcess) -> bool:
        return raw_command(node.resp_port, "SET", "jepsen:probe", "1").startswith(b"+OK")

    def voters(self) -> list[str] | None:
        """The leader's list of voting members (None without a leader)."""
        leader = self.current_leader()
        if leader is None:
            return None
        return self.raft_info(leader).get("raft_voters", "").split(",")

    def wait_voters(self, cond: Callable[[list[str]], bool], timeout: float) -> bool:
        """Whether the voters meet ``cond`` within ``timeout`` seconds."""
        try:
            poll_until(lambda: (v := self.voters()) is not None and cond(v), "voters", timeout)
        except RuntimeError:
            return False
        return True

    def rejoin(self, node: NodeProcess) -> None:
        """Wipe a (removed) member and start it again with ``--join``."""
        node.kill()
        shutil.rmtree(node.data, ignore_errors=True)
        node.join = True
        node.start()

    def repair_membership(self, timeout: float = 60.0) -> None:
        """Bring every node back as a voter (after membership faults)."""
        self.leader(timeout)
        voters = self.voters() or []
        for node in self.nodes:
            if str(node.node_id) not in voters:
                leader = self.leader(timeout)
                learners = self.raft_info(leader).get("raft_learners", "").split(",")
                if str(node.node_id) not in learners:
                    self.rejoin(node)
        for node in self.nodes:
            node.wait_up()
        if not self.wait_voters(lambda v: len(v) == self.n, timeout):
            raise RuntimeError(f"members did not come back: voters {self.voters()}")

    def keep_logs(self, dest: str) -> None:
        """Copy the node and proxy logs to ``dest``."""
        for name in os.listdir(self.dir):
            if name.startswith(("node", "proxy")):
                shutil.copy(os.path.join(self.dir, name), os.path.join(dest, name))
