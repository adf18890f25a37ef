"""The I/O side of sharding: follow the meta group's configs and move data.

A :class:`ShardDriver` runs on every node of a group in sharded mode and
acts only on the leader, each second: register the group with the meta
group, propose the next config once the previous one's incoming slots are
installed, pull incoming slot ranges from their old owner in chunks (each
chunk proposed through this group's log), mark them done, and tell the old
owner it may delete its copy. All of it is re-driven from the replicated
:class:`~eraft_twisted.shard.state.ShardState`, so a new leader picks up
where a crashed one stopped.

Proposals here go only through this node as leader (never forwarded), and
each step is fenced by the term it started in: a step that outlives its
leadership proposes nothing more, even if the node leads again later (a
new leader may have started the step over meanwhile; mixing the two would
skip or repeat chunks). The next step starts over from the replicated state.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from functools import partial
from typing import Any, Protocol, TypeAlias

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ..kv.statemachine import Op, OpError, encode_op
from ..raft.types import RaftError
from .state import ShardState

log = Logger()

CHUNK_ITEMS = 1000
PULL_RETRIES = 10
PULL_RETRY_DELAY = 0.5


Steps: TypeAlias = Generator[defer.Deferred[Any], Any, None]
"""An ``inlineCallbacks`` step: what it yields and is sent are replies."""


class MetaClient(Protocol):
    """What a kv group needs from the meta group."""

    def query(self, num: int) -> defer.Deferred[dict[str, Any] | None]:
        """Config ``num`` (-1: latest) as a dict (the meta group's
        ``ClusterConfig.to_dict``), or None if it does not exist yet."""
        ...

    def join(self, group: int, servers: list[str]) -> defer.Deferred[int]:
        """Register (or update) this group's servers."""
        ...


class GroupCaller(Protocol):
    """Runs one command on a server of another group (the server layer
    provides it over RESP: this package does not speak RESP)."""

    reactor: IReactorTime

    def call(self, address: str, *args: bytes | str | int) -> defer.Deferred[object]:
        """The reply of ``args`` run on ``address``; fails if it cannot be had."""
        ...


class LeaderNode(Protocol):
    """What the driver needs from this group's Raft node."""

    @property
    def is_leader(self) -> bool: ...

    @property
    def term(self) -> int: ...

    def propose_local(self, data: bytes) -> defer.Deferred[object]:
        """Append ``data`` on this node, the leader; fires with its apply result."""
        ...


class ShardedGroup(Protocol):
    """The group's state machine, whose ``shards`` is replaced when a
    snapshot is installed (so the driver reads it each time)."""

    shards: ShardState


def pull_reply(reply: object) -> tuple[bytes, list[bytes], int]:
    """(next cursor or b"", [key, record, ...], the source's log time) of
    an ERAFT.MIGRATE.PULL reply; ValueError if it is not one."""
    if (
        isinstance(reply, list)
        and len(reply) in (2, 3)
        and isinstance(reply[0], bytes)
        and isinstance(reply[1], list)
        and all(isinstance(x, bytes) for x in reply[1])
    ):
        source_time = int(reply[2]) if len(reply) > 2 else 0
        return reply[0], reply[1], source_time
    raise ValueError(f"not an ERAFT.MIGRATE.PULL reply: {reply!r:.200}")


class ShardDriver:
    """Keeps one group's slots in step with the meta group's configs."""

    def __init__(
        self,
        node: LeaderNode,
        sm: ShardedGroup,
        group: int,
        meta: MetaClient,
        pool: GroupCaller,
        servers: Callable[[], list[str] | None],
        now_ms: Callable[[], int],
    ) -> None:
        self.node = node
        self.sm = sm
        self.group = group
        self.meta = meta
        self.pool = pool
        self.servers = servers
        self.now_ms = now_ms
        self.registered: list[str] | None = None
        self._good_source: dict[int, int] = {}
        self._busy: set[tuple[str | int, ...]] = set()
        self.progress: dict[tuple[int, int, int], dict[str, int]] = {}
        """(num, lo, hi) -> keys/bytes copied so far (and done=1 once
        installed, kept until a newer config), for INFO."""

    # -- the periodic step -------------------------------------------------
    def step(self) -> None:
        """Start whatever work is due; each kind runs at most once at a time."""
        if not self.node.is_leader:
            return
        term = self.node.term
        shards = self.sm.shards
        for key in [k for k in self.progress if k[0] < shards.num]:
            del self.progress[key]
        self._once(("register",), self._register)
        if not shards.incoming:
            self._once(("config",), partial(self._next_config, term))
        for lo, hi, src, num in shards.runs(shards.incoming):
            self._once(("pull", num, lo, hi), partial(self._pull, num, lo, hi, src, term))
        for lo, hi, src, num in shards.runs(shards.notify):
            self._once(("release", num, lo, hi), partial(self._release, num, lo, hi, src, term))

    def _once(self, key: tuple[str | int, ...], fn: Callable[[], defer.Deferred[None]]) -> None:
        if key in self._busy:
            return
        self._busy.add(key)
        d = defer.maybeDeferred(fn)
        d.addErrback(lambda f: log.info("shard step {k} will retry: {e}", k=key, e=f.value))
        d.addBoth(lambda _: self._busy.discard(key))

    def _propose(self, term: int, op: Op, *args: object) -> defer.Deferred[int]:
        """Propose on this node, only while it is still the leader of ``term``;
        fires with the op's count (every op proposed here answers one)."""
        if not self.node.is_leader or self.node.term != term:
            return defer.fail(RaftError(f"no longer the leader of term {term}"))
        return self.node.propose_local(encode_op(op, self.now_ms(), *args)).addCallback(_count)

    # -- steps -------------------------------------------------------------
    @defer.inlineCallbacks
    def _register(self) -> Steps:
        servers = self.servers()
        if servers is None or servers == self.registered:
            return
        latest = yield self.meta.query(-1)
        current = (latest or {}).get("groups", {}).get(str(self.group))
        if current is None or sorted(current) != sorted(servers):
            yield self.meta.join(self.group, servers)
            log.info("registered group {g} with the meta group: {s}", g=self.group, s=servers)
        self.registered = servers

    @defer.inlineCallbacks
    def _next_config(self, term: int) -> Steps:
        num = self.sm.shards.num + 1
        config = yield self.meta.query(num)
        if config is None or self.sm.shards.num + 1 != num:
            return
        applied = yield self._propose(term, Op.CONFIG, self.group, config)
        if applied:
            log.info("group {g} now at config {n}", g=self.group, n=num)

    @defer.inlineCallbacks
    def _call_source(
        self, src: int, *args: bytes | str | int
    ) -> Generator[defer.Deferred[object], object, object]:
        """Run one command on a server of group ``src``: the one that answered
        last time first, then each of the others (any member can answer, a
        dead one must not stall the move)."""
        servers = [str(s) for s in self.sm.shards.groups.get(src) or []]
        if not servers:
            raise RaftError(f"group {src} has no servers in the config")
        start = self._good_source.get(src, 0)
        for i in range(len(servers) - 1):
            address = servers[(start + i) % len(servers)]
            try:
                reply = yield self.pool.call(address, *args)
            except Exception:
                continue
            self._good_source[src] = (start + i) % len(servers)
            return reply
        last = (start + len(servers) - 1) % len(servers)
        reply = yield self.pool.call(servers[last], *args)
        self._good_source[src] = last
        return reply

    @defer.inlineCallbacks
    def _pull(self, num: int, lo: int, hi: int, src: int, term: int) -> Steps:
        """Copy incoming run lo..hi from group ``src``, resuming where the
        replicated copy position stands (a new leader goes on from there)."""
        shards = self.sm.shards
        stats = self.progress.setdefault((num, lo, hi), {"keys": 0, "bytes": 0})
        stats.pop("done", None)
        position = shards.copy_position(num, lo, hi)
        log.info(
            "pulling slots {lo}-{hi} of config {n} from group {src}{at}",
            lo=lo,
            hi=hi,
            n=num,
            src=src,
            at="" if position is None else " (resuming the copy)",
        )
        failures = 0
        while True:
            position = shards.copy_position(num, lo, hi)
            try:
                reply = yield self._call_source(
                    src, "ERAFT.MIGRATE.PULL", num, lo, hi, position or b"", CHUNK_ITEMS, "RAW"
                )
            except Exception:
                # Keep the chunks installed so far unless the source stays away.
                failures += 1
                if failures > PULL_RETRIES or self.node.term != term or not self.node.is_leader:
                    raise
                yield task.deferLater(self.pool.reactor, PULL_RETRY_DELAY, lambda: None)
                continue
            more, items, source_time = pull_reply(reply)
            installed = yield self._propose(
                term, Op.INSTALL_ROWS, num, lo, hi, position, items, source_time
            )
            if installed < 0:
                raise RaftError(f"chunk of slots {lo}-{hi} did not fit the copy; starting over")
            stats["keys"] += len(items) // 2
            stats["bytes"] += sum(len(x) for x in items)
            if not more:
                break
        yield self._propose(term, Op.INSTALL_DONE, num, lo, hi)
        stats["done"] = 1
        log.info(
            "slots {lo}-{hi} of config {n} installed: {k} keys copied by this node",
            lo=lo,
            hi=hi,
            n=num,
            k=stats["keys"],
        )

    @defer.inlineCallbacks
    def _release(self, num: int, lo: int, hi: int, src: int, term: int) -> Steps:
        yield self._call_source(src, "ERAFT.MIGRATE.RELEASE", num, lo, hi)
        yield self._propose(term, Op.NOTIFIED, num, lo, hi)


def _count(result: object) -> int:
    """The count a sharding op answers; its refusal (a malformed op) fails."""
    if isinstance(result, OpError):
        raise RaftError(f"the group refused the operation: {result}")
    if not isinstance(result, int):
        raise RaftError(f"unexpected result of a sharding operation: {result!r}")
    return result
