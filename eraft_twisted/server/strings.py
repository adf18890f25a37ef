"""Redis string commands on top of a Raft group.

Writes become operations proposed through the group (replicated, then
applied by :class:`~eraft_twisted.kv.statemachine.KVStateMachine`); reads
wait for a ReadIndex barrier and then read the local applied state.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from ..hashslot import SLOTS
from ..kv.records import TYPE_BY_NAME, KeyType
from ..kv.results import OK
from ..kv.statemachine import (
    KEEPTTL,
    Op,
    SetCond,
    encode_op,
    parse_int,
    relative,
)
from ..kv.store import KVStore
from ..resp.commands import CommandError, CommandTable
from ..resp.encoder import Reply, SimpleString
from ..resp.state import ConnectionState
from ..shard.state import ShardState
from ..shard.statemachine import ShardedStateMachine
from .datacmd import DataCommands, OpCall
from .seams import Answer, GroupNode, raft_failure, refusal

T = TypeVar("T")

MAX_TTL_MS = 2**62
"""Larger times are refused, as Redis refuses ones that overflow."""

TICK_MS = 100
"""How far the log's time may lag the leader's clock while keys have
deadlines before the leader proposes a bare time entry."""


def _int_arg(value: bytes) -> int:
    n = parse_int(value)
    if n is None:
        raise CommandError("value is not an integer or out of range")
    return n


def _syntax() -> CommandError:
    return CommandError("syntax error")


class KVCommands:
    """Handlers of the KV commands for one node.

    Two clocks: :meth:`now_ms` is this node's (the injected ``clock``), the
    time a proposal carries until the leader stamps its own on it;
    :meth:`log_time_ms` is the log's time of the applied state, by which
    reads judge expiry (never by this node's clock).
    """

    def __init__(
        self, node: GroupNode, store: KVStore, clock: IReactorTime, sm: ShardedStateMachine
    ) -> None:
        self.node = node
        self.store = store
        self.clock = clock
        self.sm = sm
        """The state machine, whose ``shards`` say which slots we serve."""

    def now_ms(self) -> int:
        """This node's clock (ms): the time proposals carry."""
        return int(self.clock.seconds() * 1000)

    def log_time_ms(self) -> int:
        """The log's time (ms) of the applied state: the clock of expiry."""
        return self.sm.log_time

    # -- plumbing --------------------------------------------------------
    def _read(self, fn: Callable[[], T]) -> defer.Deferred[T]:
        """``fn()`` after the read barrier."""
        return self.node.read(fn).addErrback(raft_failure)

    def _sharded(self) -> ShardState | None:
        shards = self.sm.shards
        return shards if shards.sharded() else None

    def _served(self) -> Callable[[int], bool] | None:
        shards = self._sharded()
        if shards is None:
            return None
        return lambda slot: shards.check_slot(slot) is None

    # -- registration --------------------------------------------------
    def register(self, table: CommandTable, data: DataCommands) -> None:
        """Add every KV command to ``table``; the data commands through
        ``data`` (so MULTI can queue them)."""
        add = partial(data.add, table, group="string")
        key = partial(data.add, table, group="generic")
        add("get", 2, lambda a: OpCall("get", (a[1],)))
        add("set", -3, parse_set, write=True)
        add("setnx", 3, lambda a: set_call(a, SetCond.NX), _ok_as_int, write=True)
        add("getset", 3, lambda a: set_call(a, SetCond.ALWAYS, get=True), write=True)
        add("getdel", 2, lambda a: OpCall(Op.GETDEL, (a[1],)), write=True)
        add("mget", -2, lambda a: OpCall("mget", (a[1:],)), last_key=-1)
        add("mset", -3, parse_mset, last_key=-1, step=2, write=True)
        key("del", -2, lambda a: OpCall(Op.DEL, (a[1:],)), last_key=-1, write=True)
        key("unlink", -2, lambda a: OpCall(Op.DEL, (a[1:],)), last_key=-1, write=True)
        key("exists", -2, lambda a: OpCall("exists", (a[1:],)), last_key=-1)
        add("incr", 2, lambda a: OpCall(Op.INCRBY, (a[1], 1)), write=True)
        add("decr", 2, lambda a: OpCall(Op.INCRBY, (a[1], -1)), write=True)
        add("incrby", 3, lambda a: OpCall(Op.INCRBY, (a[1], _int_arg(a[2]))), write=True)
        add("decrby", 3, parse_decrby, write=True)
        add("append", 3, lambda a: OpCall(Op.APPEND, (a[1], a[2])), write=True)
        add("strlen", 2, lambda a: OpCall("strlen", (a[1],)))
        key("type", 2, lambda a: OpCall("type", (a[1],)), _status)
        key("expire", -3, partial(parse_expire, unit=1000, is_relative=True), write=True)
        key("pexpire", -3, partial(parse_expire, unit=1, is_relative=True), write=True)
        key("expireat", -3, partial(parse_expire, unit=1000, is_relative=False), write=True)
        key("pexpireat", -3, partial(parse_expire, unit=1, is_relative=False), write=True)
        key("ttl", 2, lambda a: OpCall("pttl", (a[1],)), _seconds)
        key("pttl", 2, lambda a: OpCall("pttl", (a[1],)))
        key("persist", 2, lambda a: OpCall(Op.PERSIST, (a[1],)), write=True)
        key("flushall", -1, parse_flushall, first_key=0, last_key=0, write=True)
        key("flushdb", -1, parse_flushall, first_key=0, last_key=0, write=True)
        r = table.register
        ro_flags = ["readonly"]
        r("scan", -2, ro_flags, self.scan, first_key=0, last_key=0)
        r("eraft.scan", -2, ["readonly", "admin"], self.cluster_scan, first_key=0, last_key=0)
        r("keys", 2, ro_flags, self.keys, first_key=0, last_key=0)
        r("dbsize", 1, ro_flags, self.dbsize, first_key=0, last_key=0)

    # -- reads -----------------------------------------------------------
    @staticmethod
    def _scan_args(argv: list[bytes]) -> tuple[int, int, bytes | None, KeyType | None, bool]:
        """(cursor, count, match, type, any?) of ``SCAN cursor [MATCH p]
        [COUNT n] [TYPE t]``; a TYPE that is no type matches nothing."""
        cursor = _int_arg(argv[1])
        if cursor < 0:
            raise CommandError("invalid cursor")
        count, match, kind, anything = 10, None, None, True
        i = 2
        while i < len(argv):
            opt = argv[i].lower()
            if i + 1 >= len(argv):
                raise _syntax()
            if opt == b"count":
                count = _int_arg(argv[i + 1])
                if count < 1:
                    raise _syntax()
            elif opt == b"match":
                match = argv[i + 1]
            elif opt == b"type":
                kind = TYPE_BY_NAME.get(argv[i + 1].lower())
                anything = kind is not None
            else:
                raise _syntax()
            i += 2
        return cursor, count, match, kind, anything

    def scan(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        """This node's keys (in a sharded group: of the slots it serves, as
        SCAN on a Redis Cluster node); the cursor is the next slot."""
        cursor, count, match, kind, anything = self._scan_args(argv)
        if not anything:
            return [b"0", []]

        def run() -> defer.Deferred[list[bytes | list[bytes]]]:
            d = self.store.scan(cursor, count, match, self.log_time_ms(), self._served(), kind=kind)
            return d.addCallback(lambda r: [str(r[0]).encode(), r[1]])

        return self._read(lambda: None).addCallback(lambda _: run())

    def cluster_scan(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        """``ERAFT.SCAN`` (for the router): SCAN from slot ``cursor`` on, up
        to the first slot this group does not serve right now. If that is
        the cursor's own slot, the reply is its -MOVED / -TRYAGAIN, so the
        router's cursor visits every slot once, at whichever group owns it
        then: a key present for the whole iteration is returned exactly
        once, even while its slot moves."""
        cursor, count, match, kind, anything = self._scan_args(argv)
        if cursor >= SLOTS:
            return [b"0", []]

        def run() -> Answer:
            end = SLOTS
            shards = self._sharded()
            if shards is not None:
                refused = shards.check_slot(cursor)
                if refused is not None:
                    raise refusal(refused)
                end = shards.served_until(cursor + 1)
            if not anything:
                return [str(0 if end >= SLOTS else end).encode(), []]
            d = self.store.scan(cursor, count, match, self.log_time_ms(), None, end, kind)
            return d.addCallback(lambda r: [str(r[0]).encode(), r[1]])

        return self._read(run)

    def keys(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        pattern = argv[1]
        return self._read(lambda: None).addCallback(
            lambda _: self.store.keys(pattern, self.log_time_ms(), self._served())
        )

    def dbsize(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        return self._read(lambda: None).addCallback(
            lambda _: self.store.count(self.log_time_ms(), self._served())
        )

    def sweep_expired(self, now_ms: int, limit: int = 1000) -> defer.Deferred[object]:
        """On the leader: propose the deletion of keys whose deadline its
        clock (``now_ms``) says has passed, or, while keys have deadlines and
        nothing else was written lately, a bare time entry, so the log's
        time keeps up and every replica sees keys expire.

        Replicas never expire keys on their own: the deletion goes through
        the log and its apply re-checks each key against the log's time.
        """
        if not self.node.is_leader:
            return defer.succeed(0)
        store = self.store
        if not store.expiring_count():
            return defer.succeed(0)
        keys = store.expired_keys(now_ms, limit)
        shards = self._sharded()
        if shards is not None and keys:
            theirs = {k for k in keys if shards.check_key(k) is not None}
            store.retrack(list(theirs))
            keys = [k for k in keys if k not in theirs]
        if keys:
            d = self.node.propose(encode_op(Op.EXPIRE_SWEEP, now_ms, keys))
        elif now_ms - self.log_time_ms() >= TICK_MS:
            d = self.node.propose(encode_op(Op.TICK, now_ms))
        else:
            return defer.succeed(0)

        def still_there(result: T) -> T:
            # Failed, or not expired yet by the log's time (this clock ran
            # ahead of it): look at them again on a later sweep.
            store.retrack(keys)
            return result

        return d.addBoth(still_there)


# -- parsing: argv -> the state machine operation -----------------------------
def set_call(
    argv: list[bytes],
    cond: SetCond,
    get: bool = False,
    expire_at: int | list[int] = 0,
) -> OpCall:
    return OpCall(Op.SET, (argv[1], argv[2], expire_at, int(cond), get))


def parse_set(argv: list[bytes]) -> OpCall:
    """``SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]``."""
    cond = SetCond.ALWAYS
    expire_at: int | list[int] = 0
    get = False
    seen_expire = False
    i = 3
    while i < len(argv):
        opt = argv[i].upper()
        if opt in (b"NX", b"XX"):
            if cond != SetCond.ALWAYS:
                raise _syntax()
            cond = SetCond.NX if opt == b"NX" else SetCond.XX
        elif opt == b"GET":
            get = True
        elif opt == b"KEEPTTL":
            if seen_expire:
                raise _syntax()
            seen_expire = True
            expire_at = KEEPTTL
        elif opt in (b"EX", b"PX", b"EXAT", b"PXAT"):
            if seen_expire or i + 1 >= len(argv):
                raise _syntax()
            seen_expire = True
            n = _int_arg(argv[i + 1])
            unit = 1000 if opt in (b"EX", b"EXAT") else 1
            if n <= 0 or n * unit > MAX_TTL_MS:
                raise CommandError("invalid expire time in 'set' command")
            deadlines: dict[bytes, int | list[int]] = {
                b"EX": relative(n * 1000),
                b"PX": relative(n),
                b"EXAT": n * 1000,
                b"PXAT": n,
            }
            expire_at = deadlines[opt]
            i += 1
        else:
            raise _syntax()
        i += 1
    return set_call(argv, cond, get, expire_at)


def parse_mset(argv: list[bytes]) -> OpCall:
    if len(argv) % 2 == 0:
        raise CommandError("wrong number of arguments for 'mset' command")
    return OpCall(Op.MSET, (argv[1:],))


def parse_decrby(argv: list[bytes]) -> OpCall:
    n = _int_arg(argv[2])
    if n == -(2**63):
        raise CommandError("decrement would overflow")
    return OpCall(Op.INCRBY, (argv[1], -n))


def parse_expire(argv: list[bytes], unit: int, is_relative: bool) -> OpCall:
    """``EXPIRE key n [NX|XX|GT|LT]`` and its PEXPIRE/EXPIREAT/PEXPIREAT forms."""
    n = _int_arg(argv[2])
    cond = ""
    if len(argv) > 4:
        raise _syntax()
    if len(argv) == 4:
        cond = argv[3].upper().decode("latin-1")
        if cond not in ("NX", "XX", "GT", "LT"):
            raise CommandError(f"Unsupported option {argv[3].decode('latin-1')}")
    if abs(n * unit) > MAX_TTL_MS:
        name = argv[0].decode("latin-1").lower()
        raise CommandError(f"invalid expire time in '{name}' command")
    at = relative(n * unit) if is_relative else n * unit
    return OpCall(Op.EXPIREAT, (argv[1], at, cond))


def parse_flushall(argv: list[bytes]) -> OpCall:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() not in (b"SYNC", b"ASYNC")):
        raise _syntax()
    return OpCall(Op.FLUSHALL, ())


def _ok_as_int(result: object, conn: ConnectionState) -> Reply:
    return 1 if result == OK else 0


def _status(result: object, conn: ConnectionState) -> Reply:
    return SimpleString(str(result))


def _seconds(result: object, conn: ConnectionState) -> Reply:
    """PTTL's milliseconds as TTL's seconds (rounded, as Redis does)."""
    ms = int(result)  # type: ignore[call-overload]
    return ms if ms < 0 else (ms + 500) // 1000
