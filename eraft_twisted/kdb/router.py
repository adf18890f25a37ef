"""``eraftkdb``: a stateless RESP router in front of many shard groups.

It caches the meta group's latest config, sends each command to a server
of the group owning its key's hash slot, follows ``-MOVED`` (refreshing
the config) and ``-TRYAGAIN`` (a slot mid-migration) itself, and fans
multi-key commands out by slot, merging the replies. Clients see one
plain Redis server.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator
from typing import Any, Protocol, TypeVar

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from .. import REDIS_VERSION
from ..hashslot import SLOTS, key_hash_slot
from ..resp.client import NotSent, ReplyError, RespClientPool, RespReply
from ..resp.commands import CommandError, CommandTable
from ..resp.encoder import SimpleString, Verbatim
from ..resp.state import ConnectionState
from ..rpc.metaclient import WrongCluster
from ..shard.state import owner_map
from .keyed import KEYED, KEYED_READONLY, command_keys

log = Logger()

T = TypeVar("T")


MAX_REDIRECTS = 16

# Commands routed by their first argument, with their Redis arity.
SINGLE_KEY = {
    "get": 2, "set": -3, "setnx": 3, "getset": 3, "getdel": 2, "incr": 2, "decr": 2,
    "incrby": 3, "decrby": 3, "append": 3, "strlen": 2, "type": 2, "expire": -3,
    "pexpire": -3, "expireat": -3, "pexpireat": -3, "ttl": 2, "pttl": 2, "persist": 2,
}  # fmt: skip
READONLY = {"get", "strlen", "type", "ttl", "pttl"}
# Commands the router may send again after an unknown outcome.
RETRY_SAFE = (
    READONLY | KEYED_READONLY | {"mget", "exists", "eraft.scan", "keys", "dbsize", "info"}
) | {"eraft.revs"}


class ConfigSource(Protocol):
    """The meta group as the router uses it (an ``AMPMetaClient``)."""

    def query(self, num: int) -> defer.Deferred[dict[str, Any] | None]:
        """Config ``num`` (-1: latest) as plain data, or None if there is none yet."""
        ...

    def close(self) -> None: ...


class Router:
    """Routes commands by hash slot to the shard groups of the latest config."""

    def __init__(self, reactor: IReactorTime, meta: ConfigSource, timeout: float = 5.0) -> None:
        self.reactor = reactor
        self.meta = meta
        self.timeout = timeout
        self.pool = RespClientPool(reactor, timeout=timeout, keep_status=True)
        self.pool3 = RespClientPool(reactor, timeout=timeout, keep_status=True, protocol=3)
        """For clients that speak RESP3: the group shapes replies for them."""
        self.config: dict[str, Any] | None = None
        self.owners: list[int] = [0] * SLOTS
        self.first_slot: dict[int, int] = {}
        """group -> the lowest slot it owns (where a per-group command goes)."""
        self.preferred: dict[int, int] = {}
        self._refreshing: defer.Deferred[None] | None = None
        self._waiting: list[defer.Deferred[None]] = []
        self.meta_error = "meta group unreachable (no answer yet)"

    # -- config ------------------------------------------------------------
    def refresh(self) -> defer.Deferred[None]:
        """Fetch the latest config (one fetch at a time)."""
        if self._refreshing is not None:
            d: defer.Deferred[None] = defer.Deferred()
            self._waiting.append(d)
            return d

        def got(config: dict[str, Any] | None) -> None:
            if config is not None and (self.config is None or config["num"] >= self.config["num"]):
                self.config = config
                self.owners = owner_map(config["ranges"])
                first: dict[int, int] = {}
                for lo, _, gid in config["ranges"]:
                    first[gid] = min(lo, first.get(gid, lo))
                self.first_slot = first

        def done(result: T) -> T:
            self._refreshing = None
            waiting, self._waiting = self._waiting, []
            for w in waiting:
                w.callback(None)
            return result

        # Set before ``done`` is added: a query that has already fired runs
        # it at once, and it must find this set to clear it.
        self._refreshing = refreshing = self.meta.query(-1).addCallback(got)
        refreshing.addBoth(done)
        return refreshing

    @defer.inlineCallbacks
    def _refresh_or_keep(self) -> Generator[defer.Deferred[None], None, None]:
        """Refresh the config; if the meta group cannot be reached, keep the
        one we have (a request then fails with -CLUSTERDOWN if we have none)."""
        try:
            yield self.refresh()
        except WrongCluster as e:
            # Logged once by the meta client; not again per request.
            self.meta_error = f"meta group refused: {e}"
        except Exception as e:
            self.meta_error = f"meta group unreachable: {e}"
            log.info("{e}", e=self.meta_error)
        if self.config is None:
            raise CommandError(
                f"no cluster config yet: {self.meta_error}",
                code="CLUSTERDOWN",
            )

    def groups(self) -> dict[int, list[str]]:
        if self.config is None:
            return {}
        return {int(g): list(s) for g, s in self.config["groups"].items()}

    def server_of(self, group: int) -> str:
        """The server of ``group`` this router sends to now."""
        return self._server(group)

    def _server(self, group: int) -> str:
        servers = self.groups().get(group) or []
        if not servers:
            raise CommandError(f"no servers for group {group}", code="CLUSTERDOWN")
        return servers[self.preferred.get(group, 0) % len(servers)]

    def _failed(self, group: int, address: str) -> None:
        """Prefer the server after ``address`` -- unless a concurrent request
        already moved on from it (many fan-out calls fail at once)."""
        servers = self.groups().get(group) or []
        if address in servers and self._server(group) == address:
            self.preferred[group] = (servers.index(address) + 1) % len(servers)

    # -- sending -----------------------------------------------------------
    @defer.inlineCallbacks
    def call_slot(
        self, slot: int, argv: list[bytes], protocol: int = 2
    ) -> Generator[defer.Deferred[Any], Any, RespReply]:
        """Run ``argv`` on the group owning ``slot``, following redirections,
        over a RESP2 or a RESP3 (``protocol``) connection."""
        pool = self.pool3 if protocol == 3 else self.pool
        if self.config is None:
            yield self._refresh_or_keep()
        readonly = argv[0].decode("latin-1").lower() in RETRY_SAFE
        address: str | None = None
        failures = 0
        for attempt in range(MAX_REDIRECTS):
            group = self.owners[slot]
            if group == 0:
                yield self._refresh_or_keep()
                group = self.owners[slot]
                if group == 0:
                    raise CommandError(f"hash slot {slot} is not served", code="CLUSTERDOWN")
            target = address or self._server(group)
            address = None
            try:
                reply = yield pool.call(target, *argv)
                return reply
            except ReplyError as e:
                code = e.code
                if code == "MOVED":
                    address = str(e).split()[2]
                    self._refresh_or_keep().addErrback(lambda _: None)
                    continue
                # -TIMEOUT: a write may still apply, so only a read is sent again.
                retry = (
                    ("TRYAGAIN", "CLUSTERDOWN", "TIMEOUT")
                    if readonly
                    else ("TRYAGAIN", "CLUSTERDOWN")
                )
                if code in retry and attempt < MAX_REDIRECTS - 1:
                    yield task.deferLater(self.reactor, 0.05 * (attempt + 1), lambda: None)
                    if code != "TRYAGAIN":
                        yield self._refresh_or_keep()
                    continue
                raise CommandError(str(e).partition(" ")[2], code=code) from None
            except CommandError:
                raise
            except Exception as e:  # connection refused or lost, timeout
                if not readonly and not isinstance(e, NotSent):
                    # The node may have received and applied it: sending it
                    # again could apply it twice.
                    raise CommandError(
                        f"no answer from group {group} ({e}); the write may have been applied",
                        code="TIMEOUT",
                    ) from e
                failures += 1
                self._failed(group, target)
                size = len(self.groups().get(group) or [1])
                if failures >= 3 * size:
                    raise CommandError(f"group {group} unreachable: {e}", code="CLUSTERDOWN") from e
                if failures % size == 0:  # every server failed once more: back off
                    yield task.deferLater(self.reactor, 0.1 * (failures // size), lambda: None)
        raise CommandError("too many redirections", code="CLUSTERDOWN")

    def call_key(self, key: bytes, argv: list[bytes]) -> defer.Deferred[RespReply]:
        return self.call_slot(key_hash_slot(key), argv)

    def by_slot(self, keys: list[bytes]) -> dict[int, list[int]]:
        """Key positions grouped by hash slot."""
        out: dict[int, list[int]] = defaultdict(list)
        for i, k in enumerate(keys):
            out[key_hash_slot(k)].append(i)
        return out

    def all_groups(self, argv: list[bytes]) -> defer.Deferred[list[RespReply]]:
        """Run ``argv`` once on every group."""

        @defer.inlineCallbacks
        def run() -> Generator[defer.Deferred[Any], Any, list[RespReply]]:
            if self.config is None:
                yield self._refresh_or_keep()
            calls = []
            for gid in sorted(self.groups()):
                slot = self.first_slot.get(gid)
                if slot is not None:
                    calls.append(self.call_slot(slot, argv))
            results = yield _gather(calls)
            return results

        return run()


class RouterCommands:
    """The command table of the router."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def register(self, table: CommandTable) -> None:
        r = table.register
        for name, arity in SINGLE_KEY.items():
            flags = ["readonly"] if name in READONLY else ["write"]
            r(name, arity, flags, self.single)
        for name, (arity, first, last, step, ro) in KEYED.items():
            r(name, arity, ["readonly" if ro else "write"], self.keyed, first, last, step)
        r("mget", -2, ["readonly"], self.mget, 1, -1, 1)
        r("mset", -3, ["write"], self.mset, 1, -1, 2)
        r("del", -2, ["write"], self.count_keys, 1, -1, 1)
        r("unlink", -2, ["write"], self.count_keys, 1, -1, 1)
        r("exists", -2, ["readonly"], self.count_keys, 1, -1, 1)
        r("scan", -2, ["readonly"], self.scan, 0, 0, 0)
        r("keys", 2, ["readonly"], self.keys, 0, 0, 0)
        r("dbsize", 1, ["readonly"], self.dbsize, 0, 0, 0)
        r("flushall", -1, ["write"], self.flushall, 0, 0, 0)
        r("info", -1, ["readonly"], self.info, 0, 0, 0)

    def single(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[RespReply]:
        return self.router.call_slot(key_hash_slot(argv[1]), argv, conn.protocol_version)

    def keyed(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[RespReply]:
        """A data command whose keys share a slot: to that slot's group."""
        keys = command_keys(argv[0].decode("latin-1").lower(), argv)
        slots = self.router.by_slot(keys)
        if len(slots) != 1:
            raise CommandError("Keys in request don't hash to the same slot", code="CROSSSLOT")
        return self.router.call_slot(next(iter(slots)), argv, conn.protocol_version)

    def mget(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[list[RespReply]]:
        keys = argv[1:]
        groups = self.router.by_slot(keys)
        calls = [
            self.router.call_slot(slot, [b"MGET"] + [keys[i] for i in idx])
            for slot, idx in groups.items()
        ]

        def merge(results: list[RespReply]) -> list[RespReply]:
            out: list[RespReply] = [None] * len(keys)
            for (_, idx), values in zip(groups.items(), results, strict=True):
                for i, v in zip(idx, values, strict=True):
                    out[i] = v
            return out

        return _gather(calls).addCallback(merge)

    def mset(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[SimpleString]:
        if len(argv) % 2 == 0:
            raise CommandError("wrong number of arguments for 'mset' command")
        keys = argv[1::2]
        groups = self.router.by_slot(keys)
        calls = []
        for slot, idx in groups.items():
            cmd = [b"MSET"]
            for i in idx:
                cmd += [argv[1 + 2 * i], argv[2 + 2 * i]]
            calls.append(self.router.call_slot(slot, cmd))
        return _gather(calls).addCallback(lambda _: SimpleString("OK"))

    def count_keys(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[int]:
        keys = argv[1:]
        calls = [
            self.router.call_slot(slot, [argv[0]] + [keys[i] for i in idx])
            for slot, idx in self.router.by_slot(keys).items()
        ]
        return _gather(calls).addCallback(sum)

    def scan(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[RespReply]:
        """The cursor is the next hash slot: ``ERAFT.SCAN`` goes to the slot's
        owner, which scans up to the first slot it does not serve (or
        redirects), so each slot is visited once, by its owner at the time."""
        try:
            cursor = int(argv[1])
        except ValueError:
            raise CommandError("invalid cursor") from None
        if cursor < 0:
            raise CommandError("invalid cursor")
        if cursor >= SLOTS:
            return defer.succeed([b"0", []])
        return self.router.call_slot(cursor, [b"ERAFT.SCAN", *argv[1:]])

    def keys(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[list[RespReply]]:
        return self.router.all_groups(argv).addCallback(lambda rs: [k for r in rs for k in r])

    def dbsize(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[int]:
        return self.router.all_groups(argv).addCallback(sum)

    def flushall(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[SimpleString]:
        return self.router.all_groups(argv).addCallback(lambda _: SimpleString("OK"))

    def info(self, conn: ConnectionState, argv: list[bytes]) -> Verbatim:
        config = self.router.config or {}
        groups = self.router.groups()
        lines = [
            "# Server",
            f"redis_version:{REDIS_VERSION}",
            "redis_mode:standalone",
            "executable:twistd eraftkdb",
            "",
            "# Cluster",
            f"config_num:{config.get('num', 0)}",
            f"groups:{len(groups)}",
        ]
        for gid, servers in sorted(groups.items()):
            slots = sum(1 for o in self.router.owners if o == gid)
            lines.append(f"group{gid}:servers={','.join(servers)},slots={slots}")
        return Verbatim("\r\n".join(lines) + "\r\n")


def _gather(calls: list[defer.Deferred[T]]) -> defer.Deferred[list[T]]:
    """All results in order; the first failure (e.g. a CommandError) wins."""
    d = defer.gatherResults(calls, consumeErrors=True)

    def first_failure(f: Failure) -> Failure:
        err = f.value
        assert isinstance(err, defer.FirstError)
        return err.subFailure

    return d.addErrback(first_failure)
