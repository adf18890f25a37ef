"""Redis string commands on top of a Raft group.

Writes become operations proposed through the group (replicated, then
applied by :class:`~eraft_twisted.kv.statemachine.KVStateMachine`); reads
wait for a ReadIndex barrier and then read the local applied state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from ..hashslot import SLOTS, key_hash_slot
from ..kv.records import TYPE_BY_NAME, TYPE_NAMES, KeyType, is_live, record_expire
from ..kv.results import Refused
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
from ..resp.encoder import SimpleString
from ..resp.state import ConnectionState
from ..shard.state import ShardState
from ..shard.statemachine import ShardedStateMachine
from .seams import Answer, GroupNode, raft_failure, refusal, result_reply

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
    def _write(self, op: Op, *args: object) -> defer.Deferred[object]:
        d = self.node.propose(encode_op(op, self.now_ms(), *args))
        return d.addCallbacks(result_reply, raft_failure)

    def _read(self, fn: Callable[[], T], keys: list[bytes] | tuple[()] = ()) -> defer.Deferred[T]:
        def checked() -> T:
            # After the read barrier: ownership as of the state we read.
            self._check_keys(keys)
            try:
                return fn()
            except Refused as r:  # WRONGTYPE
                raise refusal(r.err) from None

        return self.node.read(checked).addErrback(raft_failure)

    def _sharded(self) -> ShardState | None:
        shards = self.sm.shards
        return shards if shards.sharded() else None

    def _check_keys(self, keys: list[bytes] | tuple[()]) -> None:
        shards = self._sharded()
        if shards is None:
            return
        for key in keys:
            refused = shards.check_key(key)
            if refused is not None:
                raise refusal(refused)

    def _same_slot(self, keys: list[bytes]) -> None:
        """Redis Cluster's rule for multi-key commands, in sharded mode."""
        if self._sharded() is not None and len({key_hash_slot(k) for k in keys}) > 1:
            raise CommandError("Keys in request don't hash to the same slot", code="CROSSSLOT")

    def _served(self) -> Callable[[int], bool] | None:
        shards = self._sharded()
        if shards is None:
            return None
        return lambda slot: shards.check_slot(slot) is None

    # -- registration --------------------------------------------------
    def register(self, table: CommandTable) -> None:
        """Add every KV command to ``table``."""
        r = table.register
        w, ro = ["write"], ["readonly"]
        r("get", 2, ro, self.get)
        r("set", -3, w, self.set)
        r("setnx", 3, w, self.setnx)
        r("getset", 3, w, self.getset)
        r("getdel", 2, w, self.getdel)
        r("mget", -2, ro, self.mget, last_key=-1)
        r("mset", -3, w, self.mset, last_key=-1, step=2)
        r("del", -2, w, self.delete, last_key=-1)
        r("unlink", -2, w, self.delete, last_key=-1)
        r("exists", -2, ro, self.exists, last_key=-1)
        r("incr", 2, w, lambda c, a: self._incrby(a[1], 1))
        r("decr", 2, w, lambda c, a: self._incrby(a[1], -1))
        r("incrby", 3, w, lambda c, a: self._incrby(a[1], _int_arg(a[2])))
        r("decrby", 3, w, self.decrby)
        r("append", 3, w, self.append)
        r("strlen", 2, ro, self.strlen)
        r("type", 2, ro, self.type)
        r("expire", -3, w, lambda c, a: self._expire(a, 1000, is_relative=True))
        r("pexpire", -3, w, lambda c, a: self._expire(a, 1, is_relative=True))
        r("expireat", -3, w, lambda c, a: self._expire(a, 1000, is_relative=False))
        r("pexpireat", -3, w, lambda c, a: self._expire(a, 1, is_relative=False))
        r("ttl", 2, ro, lambda c, a: self._ttl(a[1], 1000))
        r("pttl", 2, ro, lambda c, a: self._ttl(a[1], 1))
        r("persist", 2, w, lambda c, a: self._write(Op.PERSIST, a[1]))
        r("scan", -2, ro, self.scan, first_key=0, last_key=0)
        r("eraft.scan", -2, ["readonly", "admin"], self.cluster_scan, first_key=0, last_key=0)
        r("keys", 2, ro, self.keys, first_key=0, last_key=0)
        r("dbsize", 1, ro, self.dbsize, first_key=0, last_key=0)
        r("flushall", -1, w, self.flushall, first_key=0, last_key=0)
        r("flushdb", -1, w, self.flushall, first_key=0, last_key=0)

    # -- reads -----------------------------------------------------------
    def get(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        key = argv[1]
        return self._read(lambda: self.store.get(key, self.log_time_ms()), [key])

    def mget(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        keys = argv[1:]
        self._same_slot(keys)
        return self._read(
            lambda: [self.store.get_string(k, self.log_time_ms()) for k in keys], keys
        )

    def exists(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        keys = argv[1:]
        self._same_slot(keys)
        return self._read(
            lambda: sum(1 for k in keys if self.store.key_type(k, self.log_time_ms()) is not None),
            keys,
        )

    def strlen(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        key = argv[1]
        return self._read(lambda: len(self.store.get(key, self.log_time_ms()) or b""), [key])

    def type(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        key = argv[1]

        def kind() -> SimpleString:
            found = self.store.key_type(key, self.log_time_ms())
            return SimpleString("none" if found is None else TYPE_NAMES[found])

        return self._read(kind, [key])

    def _ttl(self, key: bytes, unit: int) -> Answer:
        def ttl() -> int:
            now = self.log_time_ms()
            record = self.store.get_record(key)
            if record is None or not is_live(record, now):
                return -2
            exp = record_expire(record)
            if not exp:
                return -1
            left = exp - now
            return (left + unit // 2) // unit if unit > 1 else left

        return self._read(ttl, [key])

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

    # -- writes ----------------------------------------------------------
    def set(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        key, value = argv[1], argv[2]
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
        return self._write(Op.SET, key, value, expire_at, int(cond), get)

    def setnx(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        d = self._write(Op.SET, argv[1], argv[2], 0, int(SetCond.NX), False)
        return d.addCallback(lambda r: 1 if r == SimpleString("OK") else 0)

    def getset(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        return self._write(Op.SET, argv[1], argv[2], 0, int(SetCond.ALWAYS), True)

    def getdel(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        return self._write(Op.GETDEL, argv[1])

    def mset(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        if len(argv) % 2 == 0:
            raise CommandError("wrong number of arguments for 'mset' command")
        self._same_slot(argv[1::2])
        return self._write(Op.MSET, argv[1:])

    def delete(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        self._same_slot(argv[1:])
        return self._write(Op.DEL, argv[1:])

    def _incrby(self, key: bytes, delta: int) -> Answer:
        return self._write(Op.INCRBY, key, delta)

    def decrby(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        n = _int_arg(argv[2])
        if n == -(2**63):
            raise CommandError("decrement would overflow")
        return self._incrby(argv[1], -n)

    def append(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        return self._write(Op.APPEND, argv[1], argv[2])

    def _expire(self, argv: list[bytes], unit: int, is_relative: bool) -> Answer:
        key = argv[1]
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
        return self._write(Op.EXPIREAT, key, at, cond)

    def flushall(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() not in (b"SYNC", b"ASYNC")):
            raise _syntax()
        return self._write(Op.FLUSHALL)

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
