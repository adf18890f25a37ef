"""Concurrent clients of the collection and transaction campaigns.

:class:`SetWorkload` (SADD/SMEMBERS), :class:`ListWorkload` (RPUSH/LRANGE)
, :class:`TransferWorkload` (WATCH/MULTI/EXEC transfers, reads of every
account in one transaction or MGET) and :class:`QueueWorkload` (RPUSH
producers, BLPOP consumers) record every operation in a
:class:`~.collection_checkers.Recorder`; ``check()`` runs the matching
pure checker of :mod:`.collection_checkers`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .clients import Command, Reply, Server, connect, send
from .collection_checkers import (
    Op,
    Recorder,
    check_lists,
    check_queue,
    check_sets,
    check_transfers,
)
from .workload import KeySpace, SeededClients, Servers, read_everywhere

if TYPE_CHECKING:
    from redis.connection import Connection

__all__ = [
    "CollectionWorkload",
    "ListWorkload",
    "QueueWorkload",
    "SetWorkload",
    "TransferWorkload",
]


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _expect(reply: Reply, good: bool) -> Reply:
    """``reply``, or a ``BADREPLY`` error in its place when it is not an
    error but not ``good`` either (not the shape the command promises)."""
    if reply.error or good:
        return reply
    return Reply(code="BADREPLY", text=repr(reply.value)[:40])


class CollectionWorkload(SeededClients):
    """Clients each on their own connection (short timeouts, no retries)
    recording into ``recorder``; subclasses say what one step does."""

    def __init__(
        self,
        cluster: Servers,
        rng: random.Random,
        clients: int = 8,
        timeout: float = 2.0,
    ) -> None:
        super().__init__(cluster, rng, clients, timeout)
        self.recorder = Recorder()

    def stepper(self, c: int, rng: random.Random) -> Callable[[Connection], bool]:
        counter = iter(range(1, 1 << 62))

        def step(conn: Connection) -> bool:
            return self.step(conn, c, rng, next(counter))

        return step

    def step(self, conn: Connection, c: int, rng: random.Random, n: int) -> bool:
        """One operation; False to drop the connection and move on."""
        raise NotImplementedError

    def _finish(self, op: Op, reply: Reply, what: str, result: object = None) -> None:
        """Record ``op``'s outcome from ``reply``: a lost reply or an error
        leaves it unknown (``info``) for a write and ``fail`` for a read.
        After any error the client drops its connection (which also ends a
        half-done MULTI) and moves to another node."""
        rec = self.recorder
        if reply.lost or reply.code:
            error = reply.message if reply.code else reply.text
            self.errors[f"{what} {error}"[:64]] += 1
            rec.done(op, "info" if op.kind != "read" else "fail", error=error)
            return
        rec.done(op, "ok", result)  # type: ignore[arg-type]

    def acknowledged(self) -> int:
        """How many writes (adds, transfers) were acknowledged."""
        return sum(1 for op in self.recorder.ops if op.kind != "read" and op.outcome == "ok")

    def keys(self) -> list[str]:
        raise NotImplementedError

    def read(self, conn: Connection, c: int, key: str, final: bool = False) -> Op:
        """Read ``key`` once (recorded)."""
        raise NotImplementedError

    def final_reads(self, timeout: float = 120.0) -> dict[str, dict[int, object]]:
        """Read every key from every node (a thread per node), retrying
        until each read succeeds: key -> node -> what it read."""
        out: dict[str, dict[int, object]] = {k: {} for k in self.keys()}
        lock = threading.Lock()

        def attempt(conn: Connection, node: Server, key: str) -> tuple[bool, bool]:
            op = self.read(conn, -1 - node.node_id, key, final=True)
            if op.outcome != "ok":
                return False, False
            with lock:
                out[key][node.node_id] = op.result
            return True, True

        read_everywhere(self.cluster.nodes, self.keys, self.timeout, timeout, attempt)
        return out

    def check(self, final: dict[str, dict[int, object]]) -> list[str]:
        """The checker's problems (empty: correct)."""
        raise NotImplementedError


class _Grow(CollectionWorkload):
    """Adds of unique values ``c<client>-<n>`` to a few keys, and reads."""

    ADD = "SADD"
    READ: tuple[str, ...] = ("SMEMBERS",)
    PREFIX = "jset"

    def __init__(
        self,
        cluster: Servers,
        rng: random.Random,
        clients: int = 8,
        timeout: float = 2.0,
        keys: int = 3,
        ops_per_key: int = 1500,
        read_share: float = 0.2,
    ) -> None:
        super().__init__(cluster, rng, clients, timeout)
        self.space = KeySpace(keys, ops_per_key, random.Random(rng.random()), self.PREFIX)
        self.read_share = read_share

    def keys(self) -> list[str]:
        return self.space.all()

    def step(self, conn: Connection, c: int, rng: random.Random, n: int) -> bool:
        key = self.space.pick()
        if rng.random() < self.read_share:
            return self.read(conn, c, key).outcome == "ok"
        value = f"c{c}-{n}"
        op = self.recorder.invoke(c, "add", key, value)
        reply = send(conn, (self.ADD, key, value))
        result = reply.value if isinstance(reply.value, int) else None
        reply = _expect(reply, result is not None)
        self._finish(op, reply, self.ADD, result)
        return op.outcome == "ok"

    def read(self, conn: Connection, c: int, key: str, final: bool = False) -> Op:
        op = self.recorder.invoke(c, "read", key)
        op.final = final
        reply = send(conn, (*self.READ[:1], key, *self.READ[1:]))
        values = reply.value if isinstance(reply.value, list | set) else None
        reply = _expect(reply, values is not None)
        self._finish(op, reply, self.READ[0], [_text(v) for v in values or []])
        return op

    def _views(self, final: dict[str, dict[int, object]]) -> dict[str, dict[int, list[str]]]:
        return {
            k: {n: list(v) for n, v in nodes.items() if isinstance(v, list)}
            for k, nodes in final.items()
        }


class SetWorkload(_Grow):
    """SADD of unique values to a few sets; SMEMBERS now and then."""

    def check(self, final: dict[str, dict[int, object]]) -> list[str]:
        return check_sets(self.recorder.ops, self._views(final))


class ListWorkload(_Grow):
    """RPUSH of unique values to a few lists; LRANGE 0 -1 now and then."""

    ADD = "RPUSH"
    READ = ("LRANGE", "0", "-1")
    PREFIX = "jlist"

    def check(self, final: dict[str, dict[int, object]]) -> list[str]:
        return check_lists(self.recorder.ops, self._views(final))


class TransferWorkload(CollectionWorkload):
    """Transfers between ``accounts`` accounts of one slot (WATCH two,
    GET both, MULTI, DECRBY, INCRBY, EXEC; a nil EXEC is a conflict,
    recorded as ``fail``) and reads of every account, in a MULTI of GETs
    or one MGET. :meth:`setup` gives each account ``initial``."""

    def __init__(
        self,
        cluster: Servers,
        rng: random.Random,
        clients: int = 8,
        timeout: float = 2.0,
        accounts: int = 10,
        initial: int = 100,
        read_share: float = 0.3,
    ) -> None:
        super().__init__(cluster, rng, clients, timeout)
        self.accounts = [f"{{acct}}{i}" for i in range(accounts)]
        self.initial = initial
        self.read_share = read_share

    def keys(self) -> list[str]:
        return ["accounts"]

    def setup(self, port: int) -> bool:
        """MSET every account to ``initial`` through ``port``."""
        conn = connect(port, self.timeout)
        if conn is None:
            return False
        try:
            args: list[str | int] = []
            for a in self.accounts:
                args += [a, self.initial]
            return send(conn, ("MSET", *args)).value in (b"OK", "OK", True)
        finally:
            conn.disconnect()

    def step(self, conn: Connection, c: int, rng: random.Random, n: int) -> bool:
        if rng.random() < self.read_share:
            op = self.read(conn, c, "accounts", mget=rng.random() < 0.5)
            return op.outcome == "ok"
        a, b = rng.sample(self.accounts, 2)
        return self._transfer(conn, c, rng, a, b)

    def _transfer(self, conn: Connection, c: int, rng: random.Random, a: str, b: str) -> bool:
        def call(*args: str | bytes | int) -> Reply:
            reply = send(conn, tuple(args))
            if reply.error:
                self.errors[f"{_text(args[0])} {reply.message or reply.text}"[:64]] += 1
            return reply

        if call("WATCH", a, b).error:
            return False
        got = [call("GET", k) for k in (a, b)]
        if any(r.error for r in got):
            return False
        try:
            ba, bb = (int(_text(r.value)) for r in got)
        except (TypeError, ValueError):
            self.errors[f"bad balance {[r.value for r in got]}"[:64]] += 1
            return False
        if ba <= 0:
            return not call("UNWATCH").error
        x = rng.randint(1, min(ba, 20))
        steps: list[Command] = [("MULTI",), ("DECRBY", a, x), ("INCRBY", b, x)]
        for args in steps:
            if call(*args).error:
                return False
        op = self.recorder.invoke(c, "transfer", f"{a}->{b}", [ba, bb, x])
        reply = send(conn, ("EXEC",))
        if not reply.error and reply.value is None:
            self.recorder.done(op, "fail", error="conflict")
            return True
        values = reply.value if isinstance(reply.value, list) else None
        reply = _expect(reply, values is not None and all(isinstance(v, int) for v in values))
        self._finish(op, reply, "EXEC", values)
        return op.outcome == "ok"

    def read(
        self, conn: Connection, c: int, key: str, final: bool = False, mget: bool = True
    ) -> Op:
        op = self.recorder.invoke(c, "read", key)
        op.final = final
        if mget:
            reply = send(conn, ("MGET", *self.accounts))
        else:
            reply = Reply()
            for args in [("MULTI",), *[("GET", a) for a in self.accounts]]:
                r = send(conn, args)
                if r.error:
                    reply = r
                    break
            if not reply.error:
                reply = send(conn, ("EXEC",))
        values: list[int | None] | None = None
        if not reply.error:
            try:
                assert isinstance(reply.value, list)
                values = [None if v is None else int(_text(v)) for v in reply.value]
            except (AssertionError, ValueError):
                reply = _expect(reply, False)
        self._finish(op, reply, "MGET" if mget else "MULTI/GET", values)
        return op

    def check(self, final: dict[str, dict[int, object]]) -> list[str]:
        views: dict[int, list[int | None]] = {}
        for node, v in final.get("accounts", {}).items():
            if isinstance(v, list):
                views[node] = list(v)
        return check_transfers(self.recorder.ops, views, len(self.accounts), self.initial)


class QueueWorkload(CollectionWorkload):
    """Even clients produce (RPUSH of unique values ``p<client>-<n>`` to
    one of two queues, with short pauses now and then so consumers
    block); odd clients consume (BLPOP of one queue or both, timeout
    ``block`` seconds). A nil BLPOP took nothing (``fail``); an error or
    a lost reply may have taken an element (``info``)."""

    QUEUES = ("{jq}a", "{jq}b")

    def __init__(
        self,
        cluster: Servers,
        rng: random.Random,
        clients: int = 8,
        timeout: float = 2.0,
        block: float = 1.0,
        pause_share: float = 0.05,
    ) -> None:
        # The socket must outlast a BLPOP that times out on the node.
        super().__init__(cluster, rng, clients, max(timeout, block + 1.5))
        self.block = block
        self.pause_share = pause_share

    def keys(self) -> list[str]:
        return list(self.QUEUES)

    def acknowledged(self) -> int:
        """How many pushes were acknowledged."""
        return sum(1 for op in self.recorder.ops if op.kind == "push" and op.outcome == "ok")

    def popped(self) -> int:
        """How many pops acknowledged taking an element."""
        return sum(1 for op in self.recorder.ops if op.kind == "pop" and op.outcome == "ok")

    def step(self, conn: Connection, c: int, rng: random.Random, n: int) -> bool:
        if c % 2 == 0:
            if rng.random() < self.pause_share:
                self._stop.wait(rng.uniform(0.1, self.block * 1.5))
            key = rng.choice(self.QUEUES)
            value = f"p{c}-{n}"
            op = self.recorder.invoke(c, "push", key, value)
            reply = send(conn, ("RPUSH", key, value))
            result = reply.value if isinstance(reply.value, int) else None
            self._finish(op, _expect(reply, result is not None), "RPUSH", result)
            return op.outcome == "ok"
        keys = rng.choice([self.QUEUES[:1], self.QUEUES[1:], self.QUEUES])
        op = self.recorder.invoke(c, "pop", ",".join(keys))
        reply = send(conn, ("BLPOP", *keys, str(self.block)))
        if not reply.error and reply.value is None:
            self.recorder.done(op, "fail", error="nil")
            return True
        pair = reply.value if isinstance(reply.value, list) else None
        good = pair is not None and len(pair) == 2 and _text(pair[0]) in keys
        self._finish(op, _expect(reply, good), "BLPOP", [_text(v) for v in pair or []])
        return op.outcome == "ok"

    def read(self, conn: Connection, c: int, key: str, final: bool = False) -> Op:
        op = self.recorder.invoke(c, "read", key)
        op.final = final
        reply = send(conn, ("LRANGE", key, "0", "-1"))
        values = reply.value if isinstance(reply.value, list) else None
        self._finish(
            op, _expect(reply, values is not None), "LRANGE", [_text(v) for v in values or []]
        )
        return op

    def check(self, final: dict[str, dict[int, object]]) -> list[str]:
        views = {
            k: {n: list(v) for n, v in nodes.items() if isinstance(v, list)}
            for k, nodes in final.items()
        }
        return check_queue(self.recorder.ops, views)


WORKLOADS: dict[str, Callable[..., CollectionWorkload]] = {
    "set": SetWorkload,
    "list": ListWorkload,
    "transfer": TransferWorkload,
    "queue": QueueWorkload,
}
"""The campaign's workloads by name."""


def names() -> Sequence[str]:
    """The workloads' names."""
    return tuple(WORKLOADS)
