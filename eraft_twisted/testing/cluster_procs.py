"""A whole sharded deployment as real processes, for fault campaigns.

:class:`ShardedCluster` runs the meta group (3 x ``twistd eraftmeta``), kv
groups (3 x ``twistd eraftkv --meta ... --group G`` each, a
:class:`~.kvgroup.KVGroup` whose peer links go through its own
fault-injecting :class:`~.proxy.ProxyNet`) and the router (``twistd
eraftkdb``), all on 127.0.0.1 in one temporary directory. Every process
(a :class:`~.procs.TwistdProcess`) can be killed (``kill -9`` or SIGTERM),
paused and restarted on its own data; the meta group's peer links go
through a proxy as well. The meta group's HTTP admin API moves slot ranges,
the way ``eraftctl move`` does.
With ``skew``, every process runs under libfaketime with a clock of its own
that the nemesis moves (:mod:`.clockskew`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from .clockskew import SkewedClock
from .harness import poll_until
from .kvgroup import KVGroup
from .procs import MetaProcess, NodeProcess, RouterProcess, admin_call, free_ports, twistd_env
from .proxy import ProxyNet

__all__ = ["KV_ARGS", "ShardedCluster", "admin_call"]

KV_ARGS = ["--tick-ms", "50", "--timeout", "1", "--snapshot-entries", "500"]
META_ARGS = ["--tick-ms", "50"]
ROUTER_ARGS = ["--timeout", "2"]


class ShardedCluster:
    """The meta group, ``groups`` kv groups of 3 (ids 1..groups) and the router."""

    def __init__(
        self,
        groups: int = 2,
        directory: str | None = None,
        kv_args: list[str] | None = None,
        meta_args: list[str] | None = None,
        router_args: list[str] | None = None,
        skew: bool = False,
    ) -> None:
        self.dir = directory or tempfile.mkdtemp(prefix="eraft-jepsen-cluster-")
        ports = free_ports(7)
        self.meta_peers = [f"127.0.0.1:{p}" for p in ports[:3]]
        self.admin_ports = ports[3:6]
        meta_dir = os.path.join(self.dir, "meta")
        os.makedirs(meta_dir, exist_ok=True)
        # The meta nodes' links to each other go through a proxy too (kv
        # nodes and the router reach them directly, on their real ports).
        self.meta_net = ProxyNet(3, self.meta_peers, os.path.join(meta_dir, "proxy.log"))
        self.meta = [
            MetaProcess(
                i,
                [
                    a if j == i else self.meta_net.address(i, j)
                    for j, a in enumerate(self.meta_peers)
                ],
                self.admin_ports[i],
                os.path.join(meta_dir, f"data{i}"),
                # Their --peers lists differ (proxies): one token, one cluster id.
                [*(meta_args or META_ARGS), "--group-token", f"meta-{ports[0]}"],
            )
            for i in range(3)
        ]
        self.groups: dict[int, KVGroup] = {}
        try:
            self._make_groups(groups, kv_args)
        except BaseException:  # no proxy process left behind
            for net in [self.meta_net] + [g.net for g in self.groups.values() if g.net]:
                net.close()
            raise
        router_dir = os.path.join(self.dir, "router")
        os.makedirs(router_dir, exist_ok=True)
        self.router = RouterProcess(
            ports[6], self.meta_peers, router_dir, router_args or ROUTER_ARGS
        )
        self._admin_next = 0
        self.closed = False
        self.clocks: dict[str, SkewedClock] = {}
        """Each process's clock, by label, when built with ``skew``."""
        if skew:
            for name, p in self.processes():
                clock = SkewedClock(os.path.join(self.dir, f"clock-{name}"))
                p.env = clock.env(twistd_env())
                self.clocks[name] = clock

    def _make_groups(self, groups: int, kv_args: list[str] | None) -> None:
        for gid in range(1, groups + 1):
            extra = [
                *(kv_args or KV_ARGS),
                "--meta",
                ",".join(self.meta_peers),
                "--group",
                str(gid),
            ]
            self.groups[gid] = KVGroup(
                3, directory=os.path.join(self.dir, f"g{gid}"), proxies=True, extra=extra
            )

    # -- naming ------------------------------------------------------------------------
    def processes(self) -> list[tuple[str, NodeProcess]]:
        """Every process with its label: ``meta0``, ``g1n2``, ``router``."""
        out: list[tuple[str, NodeProcess]] = [(f"meta{p.node_id}", p) for p in self.meta]
        for gid, group in self.groups.items():
            out += [(f"g{gid}n{n.node_id}", n) for n in group.nodes]
        out.append(("router", self.router))
        return out

    def kv_nodes(self) -> list[NodeProcess]:
        return [n for g in self.groups.values() for n in g.nodes]

    def label(self, proc: NodeProcess) -> str:
        for name, p in self.processes():
            if p is proc:
                return name
        return "?"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        """Start everything, spread the slots evenly, start the router."""
        procs: list[NodeProcess] = [*self.meta, *self.kv_nodes()]
        for p in procs:
            p.start()
        for p in procs:
            p.wait_up(timeout)
        poll_until(self._registered, "every group registered", timeout)
        poll_until(lambda: self.admin("POST", "/rebalance", {}) is not None, "rebalance", timeout)
        self.wait_settled(timeout)
        self.router.start()
        self.router.wait_up(timeout)

    def _registered(self) -> bool:
        cfg = self.admin("GET", "/config")
        return cfg is not None and all(str(g) in cfg.get("groups", {}) for g in self.groups)

    def nets(self) -> list[ProxyNet]:
        return [self.meta_net] + [g.net for g in self.groups.values() if g.net is not None]

    def meta_leader(self) -> MetaProcess | None:
        """The meta node that says it leads (GET /status), if any."""
        for p in self.meta:
            if not p.alive or p.paused:
                continue
            try:
                if p.status(timeout=1.0).get("role") == "leader":
                    return p
            except (OSError, ValueError):
                continue
        return None

    def heal(self, timeout: float = 60.0) -> list[str]:
        """Heal every link, resume every paused process, restart every dead
        one; the labels of processes that did not come back."""
        for net in self.nets():
            net.heal()
        for clock in self.clocks.values():
            clock.set(0.0)
        for _, p in self.processes():
            if p.paused:
                p.resume()
            if not p.alive:
                p.start()
        failed = []
        for name, p in self.processes():
            try:
                p.wait_up(timeout)
            except RuntimeError:
                failed.append(name)
        return failed

    def stop(self) -> None:
        """Stop every process and proxy (each on its own: one failure does not
        leave the others running)."""
        procs: list[NodeProcess] = [self.router, *self.kv_nodes(), *self.meta]
        for p in procs:  # nothing stays stopped: SIGTERM must reach them
            if p.alive and p.paused:
                p.resume()
        for p in procs:
            try:
                p.stop()
            except Exception:
                p.kill()
        for net in self.nets():
            try:
                net.close()
            except Exception:
                pass

    def kill_all(self) -> None:
        """kill -9 everything at once, for good: nothing can be started again
        (cleanup after a timeout, while a campaign thread may still run)."""
        self.closed = True
        for _, p in self.processes():
            try:
                p.retire()
            except Exception:
                pass
        for net in self.nets():
            try:
                net.proc.kill()
            except Exception:
                pass

    def keep_logs(self, dest: str) -> None:
        """Copy every process's log (and the proxies') to ``dest``."""
        for sub in sorted(os.listdir(self.dir)):
            src = os.path.join(self.dir, sub)
            if not os.path.isdir(src):
                continue
            for name in os.listdir(src):
                if name.endswith((".log", ".stderr")):
                    shutil.copy(os.path.join(src, name), os.path.join(dest, f"{sub}-{name}"))

    # -- the meta admin API --------------------------------------------------------------
    def admin(
        self, method: str, path: str, body: object = None, timeout: float = 5.0
    ) -> dict[str, Any] | None:
        """The JSON answer of the first meta node that gives a 2xx one (None
        if none does). Starts with the node that answered last time."""
        n = len(self.admin_ports)
        for i in range(n):
            k = (self._admin_next + i) % n
            if not self.meta[k].alive or self.meta[k].paused:
                continue
            try:
                answer: dict[str, Any] = admin_call(
                    f"127.0.0.1:{self.admin_ports[k]}", method, path, body, timeout
                )
            except (OSError, ValueError):  # HTTPError (4xx/5xx) is an OSError
                continue
            self._admin_next = k
            return answer
        return None

    def settled(self) -> bool:
        """Every group applied the latest config and moves no data."""
        report = self.admin("GET", "/migrations")
        if report is None or report.get("in_flight"):
            return False
        return all(
            "error" not in g and g.get("config", -1) >= report["num"] for g in report["groups"]
        )

    def wait_settled(self, timeout: float = 60.0) -> None:
        poll_until(self.settled, "no migration in flight", timeout)
