"""Concurrent clients of one Raft group recording a checked history.

:class:`Workload` runs redis-py clients, each on its own connection, doing
reads, writes, increments and deletes on a few keys of a :class:`KeySpace`,
and records every operation in a :class:`~.linearizability.History`.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from .clients import ClientThreads, Command, Server, UniqueValues, connect, send
from .linearizability import History

if TYPE_CHECKING:
    from redis.connection import Connection

__all__ = ["KeySpace", "SeededClients", "Workload", "invoke", "read_everywhere"]


def invoke(
    history: History, client: int | str, op: str, key: str, values: UniqueValues
) -> tuple[int, Command]:
    """Record the invocation of ``op`` (write, read, increment or delete) on
    ``key``: its id and the command that does it."""
    if op == "write":
        value = values.value()
        return history.invoke(client, "write", key, value), ("SET", key, value)
    if op == "read":
        return history.invoke(client, "read", key), ("GET", key)
    if op == "increment":
        return history.invoke(client, "increment", key, 1), ("INCR", key)
    return history.invoke(client, "delete", key), ("DEL", key)


class Servers(Protocol):
    """A group's nodes (a :class:`~.kvgroup.KVGroup`, or a stand-in)."""

    @property
    def nodes(self) -> Sequence[Server]: ...


class KeySpace:
    """A few active keys; each is retired after ``ops_per_key`` operations so
    every key's history stays small enough to check quickly."""

    def __init__(self, active: int, ops_per_key: int, rng: random.Random, prefix: str) -> None:
        self.prefix = prefix
        self.ops_per_key = ops_per_key
        self.rng = rng
        self.lock = threading.Lock()
        self.next = 0
        self.active: list[str] = []
        self.used: dict[str, int] = {}
        for _ in range(active):
            self.active.append(self._new())

    def _new(self) -> str:
        key = f"{self.prefix}{self.next}"
        self.next += 1
        self.used[key] = 0
        return key

    def pick(self) -> str:
        with self.lock:
            i = self.rng.randrange(len(self.active))
            key = self.active[i]
            self.used[key] += 1
            if self.used[key] >= self.ops_per_key:
                self.active[i] = self._new()
            return key

    def all(self) -> list[str]:
        with self.lock:
            return list(self.used)


class SeededClients(ClientThreads):
    """``clients`` client threads on ``cluster``'s nodes, client ``c``
    seeded with ``seeds[c]`` (drawn from ``rng``) and doing
    :meth:`stepper`'s steps until stopped."""

    def __init__(self, cluster: Servers, rng: random.Random, clients: int, timeout: float) -> None:
        super().__init__(timeout)
        self.cluster = cluster
        self.clients = clients
        self.seeds = [rng.random() for _ in range(clients)]
        self.errors: Counter[str] = Counter()

    def start(self) -> None:
        for c in range(self.clients):
            self.spawn(f"client-{c}", self._client, c)

    def _client(self, c: int) -> None:
        rng = random.Random(self.seeds[c])
        self.drive(self.cluster.nodes, c, rng, self.stepper(c, rng))

    def stepper(self, c: int, rng: random.Random) -> Callable[[Connection], bool]:
        """Client ``c``'s step: one operation on a connection; False to
        drop the connection and move on."""
        raise NotImplementedError


class Workload(SeededClients):
    """Concurrent clients, each on its own connection with short timeouts and
    no retries, recording every operation in ``history``.

    Outcomes: a reply is ``ok``; ``-TIMEOUT`` or a lost connection/timeout
    after sending is ``info``; ``-CLUSTERDOWN`` (or any other error) is
    ``info`` for a write and ``fail`` for a read. A request is recorded only
    once its connection is up, so a refused connection records nothing.
    After a timeout, a lost connection or ``-TIMEOUT``/``-CLUSTERDOWN`` the
    client reconnects to a random node. With ``strict``, a write answered
    ``-CLUSTERDOWN`` counts as not applied (``fail``), which the README
    promises ("no leader"), so the checker holds the node to it.
    """

    MIX = (("read", 4), ("write", 3), ("increment", 2), ("delete", 1))

    def __init__(
        self,
        cluster: Servers,
        history: History,
        rng: random.Random,
        clients: int = 8,
        keys: int = 4,
        ops_per_key: int = 200,
        timeout: float = 2.0,
        prefix: str = "jk",
        strict: bool = False,
    ) -> None:
        # The key space draws from ``rng`` before the clients' seeds.
        self.keys = KeySpace(keys, ops_per_key, random.Random(rng.random()), prefix)
        super().__init__(cluster, rng, clients, timeout)
        self.history = history
        self.strict = strict
        self.values = UniqueValues()

    def stepper(self, c: int, rng: random.Random) -> Callable[[Connection], bool]:
        kinds = [k for k, w in self.MIX for _ in range(w)]

        def step(conn: Connection) -> bool:
            return self.one(conn, c, rng.choice(kinds), self.keys.pick())[0]

        return step

    def one(self, conn: Connection, c: int, kind: str, key: str) -> tuple[bool, int]:
        """Run and record one operation: (keep the connection?, its id)."""
        h = self.history
        oid, args = invoke(h, c, kind, key, self.values)
        reply = send(conn, args)
        if reply.lost:
            self.errors[f"{kind} {reply.text}"] += 1
            h.info(oid)
            return False, oid
        if reply.code:
            self.errors[f"{kind} -{reply.message}"[:64]] += 1
            code = reply.code
            if code == "TIMEOUT" or (
                kind != "read" and not (self.strict and code == "CLUSTERDOWN")
            ):
                h.info(oid)
            else:
                h.fail(oid)
            # A node that cannot reach the leader: try another one.
            return code not in ("TIMEOUT", "CLUSTERDOWN"), oid
        if kind == "write":
            h.ok(oid)
        else:
            h.ok(oid, reply.value)
        return True, oid

    def final_reads(self, timeout: float = 120.0) -> int:
        """Read every key once from every node (a thread per node), retrying
        until each read succeeds; every attempt is recorded. Returns how many
        succeeded."""
        done: list[int] = []

        def attempt(conn: Connection, node: Server, key: str) -> tuple[bool, bool]:
            keep, oid = self.one(conn, -1 - node.node_id, "read", key)
            if self.history.ops[oid].outcome == "ok":
                done.append(oid)
                return True, True
            return False, keep

        read_everywhere(self.cluster.nodes, self.keys.all, self.timeout, timeout, attempt)
        return len(done)


def read_everywhere(
    nodes: Sequence[Server],
    keys: Callable[[], list[str]],
    conn_timeout: float,
    timeout: float,
    attempt: Callable[[Connection, Server, str], tuple[bool, bool]],
) -> None:
    """For each node, in a thread of its own, go through ``keys()`` calling
    ``attempt(conn, node, key)`` -> (done with the key?, keep the
    connection?) until done, for ``timeout`` seconds in all; reconnects
    when the connection is refused or not kept."""
    deadline = time.monotonic() + timeout

    def reader(node: Server) -> None:
        conn: Connection | None = None
        for key in keys():
            while time.monotonic() < deadline:
                if conn is None:
                    conn = connect(node.resp_port, conn_timeout)
                    if conn is None:
                        time.sleep(0.1)
                        continue
                done, keep = attempt(conn, node, key)
                if done:
                    break
                if not keep:
                    conn.disconnect()
                    conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.disconnect()

    threads = [threading.Thread(target=reader, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
