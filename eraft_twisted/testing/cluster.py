"""An in-process cluster for fast, deterministic tests: ``make_cluster(clock, n)``.

Each node is the production :class:`~eraft_twisted.server.kvserver.KVServer`
(the same command table, peer links over AMP, timers, RESP service) with
two things replaced: its storage is :meth:`LevelDBStorage.in_memory`, and
its reactor is a :class:`~.memnet.HostReactor`, so every socket it opens or
listens on is in the simulated network of :mod:`.memnet` and every timer
runs on the one shared ``task.Clock``. Nothing waits on real time: a test
moves the clock with :meth:`Cluster.advance` / :meth:`Cluster.run_until`, or
lets :meth:`Cluster.call` move it until a reply comes. The Identify
handshake of peer links runs as in production (over the simulated network).

With ``groups`` (sharded mode) a three-node meta group runs too and each kv
group is started with ``--meta``-like settings; :meth:`Cluster.meta_op`
changes the cluster config as the admin API would.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.python.failure import Failure

from ..meta.api import MetaAPI
from ..meta.server import MetaServer
from ..node.driver import RaftNode
from ..node.group import RaftGroupServer
from ..raft.types import ConfState
from ..resp.client import ReplyError, RespClientProtocol, parse_info
from ..server.kvserver import KVServer
from ..storage.leveldb import LevelDBStorage
from ..storage.memorydb import MemoryDB
from .memnet import HostReactor, Network

__all__ = ["Cluster", "ClusterNode", "ReplyError", "make_cluster"]

T = TypeVar("T")

Reply = bytes | int | str | list["Reply"] | None
"""A RESP2 reply as :class:`RespClientProtocol` (``keep_status``) gives it:
status replies are ``SimpleString`` (a ``str``), bulk strings ``bytes``."""

TICK_MS = 50
ELECTION_TICKS = 10
CLIENT_HOST = "client"
"""The simulated host test clients connect from."""


class SimTimeout(AssertionError):
    """Simulated time ran out before what a test waited for happened."""


class InProcessKVServer(KVServer):
    """A KVServer whose storage is in memory (``db`` outlives a restart)."""

    def __init__(self, db: MemoryDB, **kw: Any) -> None:
        super().__init__(**kw)
        self.db = db

    def open_storage(self, conf: ConfState) -> LevelDBStorage:
        return LevelDBStorage.in_memory(conf, db=self.db)

    def start_listeners(self) -> None:
        super().start_listeners()
        # KVServer builds its RESP factory on the global reactor's clock.
        self.resp_factory.registry.clock = self.reactor


class InProcessMetaServer(MetaServer):
    """A meta group member on in-memory storage."""

    def __init__(self, db: MemoryDB, **kw: Any) -> None:
        super().__init__(**kw)
        self.db = db

    def open_storage(self, conf: ConfState) -> LevelDBStorage:
        return LevelDBStorage.in_memory(conf, db=self.db)


class ClusterNode:
    """One simulated process: its host, its data (kept across restarts)
    and the server running there now."""

    def __init__(
        self,
        cluster: Cluster,
        host: str,
        make: Callable[[HostReactor, MemoryDB], RaftGroupServer],
        resp_address: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.host = host
        self.make = make
        self.resp_address = resp_address
        self.db = MemoryDB()
        self.server: Any = None
        """The server running there now (an :class:`InProcessKVServer` or
        :class:`InProcessMetaServer`), typed loosely as tests reach into both."""
        self.reactor: HostReactor | None = None
        self._client: RespClientProtocol | None = None

    @property
    def node(self) -> RaftNode:
        """The running Raft node (a :class:`~eraft_twisted.node.driver.RaftNode`)."""
        return self.server.node

    @property
    def node_id(self) -> int:
        return int(self.server.node_id)

    @property
    def running(self) -> bool:
        return self.server is not None and bool(self.server.running)

    @property
    def is_leader(self) -> bool:
        return self.running and self.server.node is not None and self.server.node.is_leader

    def start(self) -> None:
        """Start the process (again), on the data it left behind."""
        self.reactor = self.cluster.net.reactor(self.host)
        self.server = self.make(self.reactor, self.db)
        self.server.startService()

    def stop(self) -> None:
        """An orderly stop (as on SIGTERM)."""
        if self.running:
            self.cluster.wait(defer.maybeDeferred(self.server.stopService))
        self._client = None

    def kill(self, power_loss: bool = False) -> None:
        """Kill the process: its connections drop at once. What it wrote
        stays, as the OS had it after ``kill -9``; with ``power_loss`` only
        what was synced to disk survives."""
        self.cluster.net.kill(self.host)
        # Stopped at once: it answers nobody and, on synchronous in-memory
        # storage, writes nothing more.
        self.stop()
        self.db = self.db.crash(keep_unsynced=0 if power_loss else self.db.unsynced_writes)

    def restart(self) -> None:
        self.kill()
        self.start()

    # -- RESP ----------------------------------------------------------------
    def client(self, fresh: bool = False) -> RespClientProtocol:
        """A RESP connection to this node from the client host (kept open)."""
        if fresh or self._client is None or not self._client.connected_:
            self._client = self.cluster.connect(self.resp_address or "")
        return self._client

    def call(self, *argv: bytes | str | int, timeout: float = 30.0) -> Reply:
        """Send one command, run the clock until its reply, and return it
        (status replies as ``SimpleString``); an error reply is raised as
        :class:`ReplyError`."""
        return self.cluster.wait(self.client().call(*argv), timeout)

    def error(self, *argv: bytes | str | int, timeout: float = 30.0) -> str:
        """The text of the error reply ``argv`` gets (fails if it succeeds)."""
        try:
            reply = self.call(*argv, timeout=timeout)
        except ReplyError as e:
            return str(e)
        raise AssertionError(f"{argv!r} answered {reply!r}, not an error")

    def info(self, *section: str) -> dict[str, str]:
        """``INFO [section]`` as a dict."""
        return parse_info(_text(self.call("INFO", *section)))

    def raft_info(self) -> dict[str, str]:
        """``RAFT.INFO`` as a dict."""
        return parse_info(_text(self.call("RAFT.INFO")))


class Cluster:
    """Simulated processes on one clock; see :func:`make_cluster`."""

    def __init__(self, clock: task.Clock, seed: int = 0) -> None:
        self.clock = clock
        self.net = Network(clock)
        self.rng = random.Random(seed)
        self.client_reactor = self.net.reactor(CLIENT_HOST)
        self.nodes: list[ClusterNode] = []
        """The kv nodes (of every group, in order)."""
        self.groups: dict[int, list[ClusterNode]] = {}
        self.peers: dict[int, list[str]] = {}
        """Each kv group's peer addresses, by node id."""
        self._options: dict[int, dict[str, Any]] = {}
        self.meta: list[ClusterNode] = []
        self._ports = iter(range(7000, 9000))

    def address(self) -> str:
        """A new ``host:port`` no one uses."""
        return f"127.0.0.1:{next(self._ports)}"

    # -- building --------------------------------------------------------------
    def add_group(
        self, n: int, group: int = 1, meta: list[str] | None = None, **options: Any
    ) -> list[ClusterNode]:
        """Start kv group ``group`` of ``n`` nodes (not waiting for a leader)."""
        peers = self.peers[group] = [self.address() for _ in range(n)]
        self._options[group] = {"meta": meta, **options}
        nodes = [self.kv_node(i, list(peers), group, meta, **options) for i in range(n)]
        self.groups[group] = nodes
        for node in nodes:
            node.start()
        return nodes

    def join_node(self, group: int = 1, start: bool = True, **options: Any) -> ClusterNode:
        """A new node with ``--join`` (started unless ``start`` is false):
        the next node id of ``group``, whose leader adds it as a learner and
        promotes it once it caught up. Its peer address is ``peers[group][-1]``."""
        peers = self.peers[group]
        peers.append(self.address())
        settings = {**self._options[group], "join": True, **options}
        node = self.kv_node(len(peers) - 1, list(peers), group, **settings)
        self.groups[group].append(node)
        if start:
            node.start()
        return node

    def kv_node(
        self,
        node_id: int,
        peers: list[str],
        group: int = 1,
        meta: list[str] | None = None,
        **options: Any,
    ) -> ClusterNode:
        """A kv node (not started); ``options`` go to :class:`KVServer`."""
        resp = self.address()
        seed = self.rng.getrandbits(32)
        settings: dict[str, Any] = {
            "tick_ms": TICK_MS,
            "election_ticks": ELECTION_TICKS,
            "group": f"kv-{group}",
            "group_id": group,
            "meta": meta,
            **options,
        }

        def make(reactor: HostReactor, db: MemoryDB) -> KVServer:
            server = InProcessKVServer(
                db,
                node_id=node_id,
                peers=peers,
                data_dir=f"/sim/{host}",
                resp_address=resp,
                reactor=reactor,
                **settings,
            )
            server.rng = random.Random(seed)
            return server

        host = f"kv{group}-{node_id}"
        node = ClusterNode(self, host, make, resp)
        self.nodes.append(node)
        return node

    def add_meta(self, n: int = 3) -> list[ClusterNode]:
        """Start the meta group (``n`` nodes)."""
        peers = [self.address() for _ in range(n)]
        for i in range(n):
            admin, seed = self.address(), self.rng.getrandbits(32)

            def make(
                reactor: HostReactor, db: MemoryDB, i: int = i, admin: str = admin, seed: int = seed
            ) -> MetaServer:
                server = InProcessMetaServer(
                    db,
                    node_id=i,
                    peers=peers,
                    data_dir=f"/sim/meta-{i}",
                    admin_address=admin,
                    reactor=reactor,
                    tick_ms=TICK_MS,
                    election_ticks=ELECTION_TICKS,
                )
                server.rng = random.Random(seed)
                return server

            node = ClusterNode(self, f"meta-{i}", make)
            self.meta.append(node)
            node.start()
        return self.meta

    # -- time ------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Run everything due in the next ``seconds``, in time order."""
        end = self.clock.seconds() + seconds
        while True:
            calls = self.clock.getDelayedCalls()
            due = min((c.getTime() for c in calls), default=end + 1)
            if due > end:
                break
            self.clock.advance(max(0.0, due - self.clock.seconds()))
        self.clock.advance(max(0.0, end - self.clock.seconds()))

    def run_until(
        self, predicate: Callable[[], T | None], timeout: float = 30.0, step: float = 0.01
    ) -> T:
        """Run the clock until ``predicate()`` is true (returns its value);
        SimTimeout after ``timeout`` simulated seconds."""
        deadline = self.clock.seconds() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if self.clock.seconds() >= deadline:
                raise SimTimeout(f"not true after {timeout:g} simulated seconds: {predicate}")
            self.advance(step)

    def wait(self, d: defer.Deferred[T], timeout: float = 30.0) -> T:
        """Run the clock until ``d`` fires; its result, or its error raised."""
        outcome: list[T | Failure] = []
        d.addBoth(outcome.append)
        self.run_until(lambda: outcome, timeout)
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result  # type: ignore[return-value]

    # -- the group -------------------------------------------------------------
    def leader(self, group: int = 1, timeout: float = 30.0) -> ClusterNode:
        """The leader of ``group`` a majority of its voters follow (waits
        for one); a deposed leader cut off from them does not count."""
        return self.run_until(lambda: self.current_leader(group), timeout)

    def current_leader(self, group: int = 1) -> ClusterNode | None:
        """The leader of ``group`` a majority of its voters follow now, if any."""
        nodes = [n for n in self.groups[group] if n.running and n.node.raw is not None]
        for leader in sorted((n for n in nodes if n.is_leader), key=lambda n: -n.node.term):
            raw = leader.node.raw
            voters = raw.conf.voters if raw is not None else ()
            if leader.node_id not in voters:
                continue  # removed itself: it steps down
            term = leader.node.term
            followers = [
                n
                for n in nodes
                if n.node_id in voters and (n.node.leader, n.node.term) == (leader.node_id, term)
            ]
            if 2 * len(followers) > len(voters):
                return leader
        return None

    def followers(self, group: int = 1) -> list[ClusterNode]:
        leader = self.leader(group)
        return [n for n in self.groups[group] if n is not leader and n.running]

    def meta_leader(self) -> ClusterNode:
        return self.run_until(lambda: next((n for n in self.meta if n.is_leader), None))

    def meta_op(self, name: str, *args: object, timeout: float = 30.0) -> object:
        """Run a cluster-config operation (``"join"``, ``"move"``, ...) on the
        meta group, as its admin API does."""
        leader = self.meta_leader()
        api = MetaAPI(leader.server.node, leader.server.app)
        return self.wait(api.submit(name, *args), timeout)

    def settle(self, timeout: float = 60.0) -> int:
        """Run until every kv node applied the meta group's latest config and
        no slot is still moving; returns that config's number."""
        leader = self.meta_leader()

        def settled() -> int | None:
            num = int(leader.server.app.history.latest.num)
            for node in self.nodes:
                if not node.running:
                    continue
                shards = node.server.app.sm.shards
                if shards.num != num or shards.incoming or shards.outgoing or shards.notify:
                    return None
            return num

        return self.run_until(settled, timeout)

    # -- clients ---------------------------------------------------------------
    def connect(self, address: str) -> RespClientProtocol:
        """A new RESP connection from the client host to ``address``."""
        host, _, port = address.rpartition(":")
        endpoint = TCP4ClientEndpoint(self.client_reactor, host, int(port))
        return self.wait(connectProtocol(endpoint, RespClientProtocol(keep_status=True)))

    def call(self, index: int, *argv: bytes | str | int) -> Reply:
        """:meth:`ClusterNode.call` on ``nodes[index]``."""
        return self.nodes[index].call(*argv)

    # -- faults ----------------------------------------------------------------
    def cut(self, a: ClusterNode | str, b: ClusterNode | str) -> None:
        """Partition two hosts (a node, or ``CLIENT_HOST``)."""
        self.net.cut(_host(a), _host(b))

    def isolate(self, node: ClusterNode) -> None:
        """Cut ``node`` off from every other server (clients still reach it)."""
        for other in [*self.nodes, *self.meta]:
            if other is not node:
                self.net.cut(node.host, other.host)

    def heal(self) -> None:
        self.net.heal()

    def stop(self) -> None:
        """Stop every process (a test's cleanup)."""
        for node in [*self.nodes, *self.meta]:
            node.stop()
        self.advance(1)


def _text(reply: Reply) -> bytes:
    if not isinstance(reply, bytes):
        raise AssertionError(f"expected a bulk string, got {reply!r}")
    return reply


def _host(x: ClusterNode | str) -> str:
    return x if isinstance(x, str) else x.host


def make_cluster(
    clock: task.Clock | None = None,
    n: int = 3,
    *,
    groups: int = 0,
    seed: int = 0,
    wait: bool = True,
    **options: Any,
) -> Cluster:
    """``n`` kv nodes of one group (single-group mode), or with ``groups``
    that many sharded groups of ``n`` plus a meta group of three, all
    driven by ``clock``; ``options`` go to every :class:`KVServer`. With
    ``wait`` it returns once every group has a leader (and, sharded, the
    first config is applied everywhere)."""
    cluster = Cluster(clock or task.Clock(), seed)
    if not groups:
        cluster.add_group(n, 1, **options)
        if wait:
            cluster.leader(1)
        return cluster
    meta = cluster.add_meta(3)
    if wait:
        cluster.meta_leader()
    addresses = [m.server.peers[m.server.node_id] for m in meta]
    for gid in range(1, groups + 1):
        cluster.add_group(n, gid, meta=addresses, **options)
    if wait:
        for gid in range(1, groups + 1):
            cluster.leader(gid)
        cluster.run_until(lambda: all(_serving(nd) for nd in cluster.nodes), timeout=60)
    return cluster


def _serving(node: ClusterNode) -> bool:
    """Has ``node`` applied a config that lists its group?"""
    shards = node.server.app.sm.shards
    return bool(shards.sharded() and shards.group in shards.groups)
