"""Clients of a sharded cluster for fault campaigns, recording a checked history.

Some clients talk to the router, some straight to kv nodes. Every
operation is recorded in one :class:`~.linearizability.History`:

* ``SET k v`` and ``SET k v PX <ttl>`` (a TTL write, with a TTL far longer
  than the run, so the register model holds), ``GET``, ``INCR``, ``DEL`` on
  a few active keys at a time (retired after some operations, so each
  key's history stays small), spread over every slot and so over both
  groups and the ranges that move;
* counters: keys only ever ``INCR``-ed (and read); at the end each must lie
  between its acknowledged increments and those plus the unknown ones;
* TTL keys: only ever written with ``PX``; at the end each must still
  carry a TTL (one lost in a migration or a snapshot shows as ``-1``);
* expiring keys: each written once with a short ``PX`` and then read on
  every kind of connection while it expires; once a read saw it expired no
  later read may return it (:mod:`.expiry_check`).

Outcomes are strict: ``-MOVED``, ``-TRYAGAIN``, ``-CLUSTERDOWN`` and
``-CROSSSLOT`` mean "certainly not applied" (``fail``); ``-TIMEOUT``, a
lost connection or a socket timeout mean "unknown" (``info``); another
error is ``info`` for a write (and counted, to be looked at). A direct
client that gets ``-MOVED`` follows it once, to the address given (or,
if that node refuses connections, another node of its group), and
asks again up to 3 times after ``-TRYAGAIN``, within the same operation
(the attempts before were not applied).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from .clients import ClientThreads, Command, Reply, UniqueValues, connect, send
from .cluster_procs import ShardedCluster
from .expiry_check import ExpiryRecorder
from .linearizability import History
from .workload import KeySpace, invoke

if TYPE_CHECKING:
    from redis.connection import Connection

__all__ = ["NOT_APPLIED", "ClusterWorkload"]

NOT_APPLIED = ("MOVED", "TRYAGAIN", "CLUSTERDOWN", "CROSSSLOT")
"""Error codes that promise the write was never appended to any log."""

TTL_MS = 3_600_000
"""TTL of the TTL writes: nothing expires during a campaign."""

# (category, weight) and, per category, (operation, weight)
CATEGORIES = (("main", 6), ("counter", 2), ("ttl", 2), ("expiring", 2))
EXPIRING_PX = (300, 3000)
"""TTLs (ms) of the expiring keys: they expire during the run."""
MIXES = {
    "main": (("read", 4), ("write", 2), ("ttl-write", 1), ("increment", 2), ("delete", 1)),
    "counter": (("increment", 4), ("read", 1)),
    "ttl": (("ttl-write", 2), ("read", 2)),
}


def _connection_ok(reply: Reply | None) -> bool:
    """Whether the connection that got ``reply`` is worth keeping."""
    return reply is not None and not reply.lost and reply.code != "TIMEOUT"


Connections = dict[int, "Connection"]
"""A client's connections, by port."""


class ClusterWorkload(ClientThreads):
    """``router_clients`` clients on the router and ``direct_clients`` on
    random kv nodes, each on its own connections with short timeouts."""

    def __init__(
        self,
        cluster: ShardedCluster,
        history: History,
        rng: random.Random,
        router_clients: int = 6,
        direct_clients: int = 4,
        keys: int = 6,
        counters: int = 3,
        ttl_keys: int = 3,
        ops_per_key: int = 200,
        timeout: float = 4.0,
    ) -> None:
        super().__init__(timeout)
        self.cluster = cluster
        self.history = history
        self.clients = [("router", c) for c in range(router_clients)]
        self.clients += [("direct", router_clients + c) for c in range(direct_clients)]
        self.spaces = {
            "main": KeySpace(keys, ops_per_key, random.Random(rng.random()), "ck"),
            "counter": KeySpace(counters, ops_per_key, random.Random(rng.random()), "cc"),
            "ttl": KeySpace(ttl_keys, ops_per_key, random.Random(rng.random()), "ct"),
        }
        self.seeds = [rng.random() for _ in self.clients]
        self.values = UniqueValues()
        self._lock = threading.Lock()
        self.errors: Counter[str] = Counter()
        self.redirects = 0
        self.expiring = ExpiryRecorder()

    # -- running -----------------------------------------------------------------------
    def start(self) -> None:
        for i, (kind, c) in enumerate(self.clients):
            self.spawn(f"{kind}-{c}", self._client, kind, c, self.seeds[i])

    def _ports(self, kind: str) -> list[int]:
        if kind == "router":
            return [self.cluster.router.resp_port]
        return [n.resp_port for n in self.cluster.kv_nodes()]

    def _client(self, kind: str, c: int, seed: float) -> None:
        rng = random.Random(seed)
        ports = self._ports(kind)
        port = ports[c % len(ports)]
        conns: Connections = {}
        categories = [k for k, w in CATEGORIES for _ in range(w)]
        mixes = {cat: [op for op, w in mix for _ in range(w)] for cat, mix in MIXES.items()}
        while not self._stop.is_set():
            conn = self._connect(conns, port)
            if conn is None:
                port = rng.choice(ports)
                self._stop.wait(0.05)
                continue
            cat = rng.choice(categories)
            if cat == "expiring":
                if not self._expiring(conns, port, rng, follow=kind == "direct"):
                    self._drop(conns, port)
                    port = rng.choice(ports)
                continue
            op = rng.choice(mixes[cat])
            key = self.spaces[cat].pick()
            if not self.one(conns, port, c, op, key, follow=kind == "direct")[0]:
                self._drop(conns, port)
                port = rng.choice(ports)
        for conn in conns.values():
            conn.disconnect()

    def _group_of(self, port: int) -> list[int]:
        """``port`` and then the RESP ports of the other nodes of its group."""
        for group in self.cluster.groups.values():
            ports = [n.resp_port for n in group.nodes]
            if port in ports:
                return [port] + [p for p in ports if p != port]
        return [port]

    def _connect(self, conns: Connections, port: int) -> Connection | None:
        conn = conns.get(port)
        if conn is None:
            conn = connect(port, self.timeout)
            if conn is None:
                return None
            conns[port] = conn
        return conn

    @staticmethod
    def _drop(conns: Connections, port: int) -> None:
        conn = conns.pop(port, None)
        if conn is not None:
            conn.disconnect()

    def one(
        self, conns: Connections, port: int, c: int | str, op: str, key: str, follow: bool
    ) -> tuple[bool, int]:
        """Run and record one operation on the connection to ``port`` (which
        must be in ``conns``): (stay on this port?, the operation's id)."""
        h = self.history
        if op == "ttl-write":
            oid, args = invoke(h, c, "write", key, self.values)
            args = (*args, "PX", TTL_MS)
        else:
            oid, args = invoke(h, c, op, key, self.values)
        reply, used = self._exchange(conns, port, args, follow, op)
        if reply is None:
            h.fail(oid)  # never sent anywhere that could apply it
            return True, oid
        if reply.lost:
            self.errors[f"{op} {reply.text}"] += 1
            h.info(oid)
            self._drop(conns, used)
            return used != port, oid
        if reply.code:
            text = "" if reply.code in ("MOVED", "TRYAGAIN") else " " + reply.text
            self.errors[f"{op} -{reply.code}{text}"[:72]] += 1
            if reply.code in NOT_APPLIED or op == "read":
                h.fail(oid)
            else:
                h.info(oid)
            if reply.code in ("TIMEOUT", "CLUSTERDOWN"):
                self._drop(conns, used)
                return used != port, oid
            return True, oid
        h.ok(oid, reply.value)
        return True, oid

    def _exchange(
        self, conns: Connections, port: int, args: Command, follow: bool, op: str
    ) -> tuple[Reply | None, int]:
        """Send ``args`` on ``port``; a direct client follows one ``-MOVED``
        and retries ``-TRYAGAIN`` (neither was applied). (reply, port that
        answered); reply None: the owner refused connections, nothing sent."""
        used = port
        reply = send(conns[port], args)
        if follow and reply.code == "MOVED":
            # "-MOVED <slot> <host:port>": not applied here; try the owner once.
            with self._lock:
                self.redirects += 1
            target = int(reply.text.split()[-1].rpartition(":")[2])
            conn = None
            for used in self._group_of(target):  # the one named first, then its peers
                conn = self._connect(conns, used)
                if conn is not None:
                    break
            if conn is None:
                self.errors[f"{op} -MOVED to a group refusing connections"] += 1
                return None, used
            reply = send(conn, args)
        tries = 0
        while follow and reply.code == "TRYAGAIN" and tries < 3 and not self._stop.is_set():
            # The slot is mid-migration: not applied; ask again shortly.
            tries += 1
            time.sleep(0.05 * tries)
            reply = send(conns[used], args)
        return reply, used

    def _expiring(self, conns: Connections, port: int, rng: random.Random, follow: bool) -> bool:
        """Write a new expiring key, or read a live one; False: drop the
        connection (it failed or timed out)."""
        rec = self.expiring
        key = rec.new_key() if rng.random() < 0.3 else None
        if key is not None:
            value = self.values.value()
            ttl = rng.randint(*EXPIRING_PX)
            reply, used = self._exchange(conns, port, ("SET", key, value, "PX", ttl), follow, "px")
            if reply is not None and not reply.error:
                rec.written(key, value, ttl, time.monotonic())
            return _connection_ok(reply)
        key = rec.pick(rng.random())
        if key is None:
            return True
        invoked = time.monotonic()
        reply, used = self._exchange(conns, port, ("GET", key), follow, "expiring read")
        if reply is None or reply.error:
            return _connection_ok(reply)
        where = "the router" if used == self.cluster.router.resp_port else f"port {used}"
        rec.read(key, invoked, time.monotonic(), reply.value, where)
        return True

    # -- the end -------------------------------------------------------------------------
    def all_keys(self) -> list[str]:
        return [k for space in self.spaces.values() for k in space.all()]

    def final_reads(self, timeout: float = 120.0) -> int:
        """Read every key once through the router, retrying each until it
        succeeds (every attempt is recorded). Returns how many succeeded."""
        deadline = time.monotonic() + timeout
        port = self.cluster.router.resp_port
        conns: Connections = {}
        done = 0
        for key in self.all_keys():
            while time.monotonic() < deadline:
                if self._connect(conns, port) is None:
                    time.sleep(0.1)
                    continue
                _, oid = self.one(conns, port, "final", "read", key, follow=False)
                if self.history.ops[oid].outcome == "ok":
                    done += 1
                    break
                time.sleep(0.05)
        for conn in conns.values():
            conn.disconnect()
        return done

    def final_values(self) -> dict[str, str | int | None]:
        """Each key's value as last read by the final reads."""
        out: dict[str, str | int | None] = {}
        for op in self.history.ops:
            if op.client == "final" and op.outcome == "ok":
                out[op.key] = op.result
        return out

    def counter_problems(self) -> list[str]:
        """Every counter between acknowledged and acknowledged + unknown INCRs."""
        acked: Counter[str] = Counter()
        unknown: Counter[str] = Counter()
        for op in self.history.ops:
            if op.op == "increment" and op.key.startswith("cc"):
                if op.outcome == "ok":
                    acked[op.key] += 1
                elif op.outcome != "fail":
                    unknown[op.key] += 1
        final = self.final_values()
        problems = []
        for key in self.spaces["counter"].all():
            if key not in final:
                problems.append(f"counter {key} was not read back")
                continue
            v = int(final[key] or 0)
            lo, hi = acked[key], acked[key] + unknown[key]
            if not lo <= v <= hi:
                problems.append(
                    f"counter {key} is {v}, expected {lo}..{hi} "
                    f"({acked[key]} acknowledged, {unknown[key]} unknown INCRs)"
                )
        return problems

    def ttl_problems(self, timeout: float = 60.0) -> list[str]:
        """Every TTL key that exists still has a TTL (PTTL through the router)."""
        port = self.cluster.router.resp_port
        conns: Connections = {}
        problems = []
        deadline = time.monotonic() + timeout
        for key in self.spaces["ttl"].all():
            while time.monotonic() < deadline:
                conn = self._connect(conns, port)
                reply = send(conn, ("PTTL", key)) if conn is not None else Reply(lost=True)
                if reply.error:
                    self._drop(conns, port)
                    time.sleep(0.1)
                    continue
                pttl = reply.value
                assert isinstance(pttl, int), f"PTTL {key} answered {pttl!r}"
                if pttl == -1 or pttl > TTL_MS:
                    problems.append(
                        f"TTL key {key} has PTTL {pttl} (written only with PX {TTL_MS})"
                    )
                break
            else:
                problems.append(f"TTL key {key}: no PTTL answer")
        for conn in conns.values():
            conn.disconnect()
        return problems
