"""The KV state machine: deterministic application of write operations.

Every write is proposed as an *operation* (msgpack ``[opcode, now_ms,
args...]``). The leader stamps ``now_ms`` with its own clock when it
appends the entry (:meth:`KVApplication.stamp`), and the state machine
keeps ``log_time``, the largest stamp applied so far: it never goes
backwards along the log, across leader changes too. Relative TTLs become
deadlines at ``log_time`` when applied, and reads judge expiry at the
``log_time`` of the state they read, so every replica agrees on what has
expired. A stored record is ``expire_at_ms (8 bytes, 0 = none) + value``.
"""

from __future__ import annotations

import inspect
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, TypeAlias

import msgpack

from ..hashslot import SLOTS

_EXP = struct.Struct(">q")
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class Op(IntEnum):
    """Write operation codes (stable: they are stored in the log)."""

    SET = 1
    DEL = 2
    GETDEL = 3
    INCRBY = 4
    APPEND = 5
    EXPIREAT = 6
    PERSIST = 7
    MSET = 8
    FLUSHALL = 9
    EXPIRE_SWEEP = 10
    MEMBER = 11
    CONFIG = 12
    INSTALL = 13
    INSTALL_DONE = 14
    RELEASE = 15
    NOTIFIED = 16
    INSTALL_AT = 17
    TICK = 18


# How each client write op carries its keys in its first argument: one
# key, a list of keys, or a flat list of key/value pairs.
_KEY_ARGS = {
    Op.SET: "one",
    Op.GETDEL: "one",
    Op.INCRBY: "one",
    Op.APPEND: "one",
    Op.EXPIREAT: "one",
    Op.PERSIST: "one",
    Op.DEL: "list",
    Op.MSET: "pairs",
}


class SetCond(IntEnum):
    ALWAYS = 0
    NX = 1
    XX = 2


KEEPTTL = -1
"""``expire_at`` value of a SET that keeps the key's current TTL."""

OK = "OK"
"""Result of a write that replies ``+OK``."""


@dataclass(frozen=True)
class OpError:
    """An operation that applied as a refusal: the command layer replies
    ``-CODE message``. Results of apply are not stored; one that is sent to
    the follower that forwarded the write travels as :meth:`to_wire`."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"

    def to_wire(self) -> dict[str, str]:
        """``{"err": "CODE message"}``: how a forwarded result carries it
        (and what versions before :class:`OpError` sent)."""
        return {"err": str(self)}

    @classmethod
    def from_wire(cls, value: object) -> OpError | None:
        """The error a forwarded result carries, or None if it is no error."""
        if isinstance(value, dict) and len(value) == 1:
            text = value.get("err")
            if isinstance(text, str):
                code, _, message = text.partition(" ")
                return cls(code, message)
        return None


Result: TypeAlias = bytes | str | int | OpError | None
"""What applying an operation answers (``OK`` for ``+OK``)."""

Writes: TypeAlias = list[tuple[bytes, bytes | None]]
"""``(key, record or None to delete)`` changes an operation makes."""

Applied: TypeAlias = tuple[Result, Writes]

MALFORMED = OpError("ERR", "malformed operation")


_STAMP = struct.Struct(">Q")
_STAMP_AT = slice(3, 3 + _STAMP.size)


def encode_op(op: Op, now_ms: int, *args: object) -> bytes:
    """Serialise a write for the log: a msgpack array whose time is always a
    uint64 at bytes 3..10, so the leader can restamp it without decoding."""
    head = bytes((0x90 | (2 + len(args)), int(op), 0xCF)) + _STAMP.pack(max(0, now_ms))
    return head + b"".join(msgpack.packb(a, use_bin_type=True) for a in args)


def stamp_op(data: bytes, now_ms: int) -> bytes:
    """``data`` with its time replaced by ``now_ms`` (the leader's clock)."""
    if len(data) > 10 and data[0] & 0xF0 == 0x90 and data[2] == 0xCF:
        return data[:3] + _STAMP.pack(max(0, now_ms)) + data[11:]
    try:  # written by an older version: any msgpack int
        op, _, *args = msgpack.unpackb(data, raw=False)
        return encode_op(op, now_ms, *args)
    except Exception:
        return data  # malformed: apply answers it with an error, everywhere


def relative(ms: int) -> list[int]:
    """A TTL argument that becomes ``log_time + ms`` when applied."""
    return [ms]


def _deadline(at: int | list[int], log_time: int) -> int:
    """An absolute deadline from an op argument (``[ms]`` is relative)."""
    if isinstance(at, list):
        (ms,) = at
        return min(INT64_MAX, max(1, log_time + int(ms)))
    return min(INT64_MAX, max(INT64_MIN, int(at)))


class ApplyError(Exception):
    """Applying a committed entry raised: the node must stop (fail-stop)."""


def pack_record(value: bytes, expire_at: int) -> bytes:
    return _EXP.pack(expire_at) + value


def unpack_record(record: bytes) -> tuple[bytes, int]:
    """(value, expire_at_ms) of a stored record."""
    return record[8:], _EXP.unpack_from(record, 0)[0]


def live_value(record: bytes | None, now_ms: int) -> bytes | None:
    """The value of a record unless it is absent or expired at ``now_ms``."""
    if record is None:
        return None
    value, exp = unpack_record(record)
    if exp and exp <= now_ms:
        return None
    return value


def parse_int(value: bytes) -> int | None:
    """Redis's strict integer parsing (no spaces, no '+', fits in int64)."""
    if not value or len(value) > 20:
        return None
    s = value[1:] if value[:1] == b"-" else value
    if not s.isdigit() or (len(s) > 1 and s[:1] == b"0"):
        return None
    if value == b"-0":
        return None
    n = int(value)
    if n < INT64_MIN or n > INT64_MAX:
        return None
    return n


class SlotOwnership(Protocol):
    """Which keys this group serves now (the ``shard`` layer keeps it)."""

    def sharded(self) -> bool: ...

    def check_key(self, key: bytes) -> OpError | None:
        """None if ``key`` is served here now, else the refusal (-MOVED ...)."""
        ...

    def served_ranges(self) -> list[tuple[int, int]]:
        """The ``(lo, hi)`` slot runs served here now."""
        ...


class WholeKeySpace:
    """The ownership of a group that is not sharded: every key."""

    def sharded(self) -> bool:
        return False

    def check_key(self, key: bytes) -> OpError | None:
        return None

    def served_ranges(self) -> list[tuple[int, int]]:
        return [(0, SLOTS - 1)]


class StateStore(Protocol):
    """What applying reads and stages besides the writes it returns (a
    :class:`~eraft_twisted.kv.store.KVStore`)."""

    def get_record(self, key: bytes) -> bytes | None:
        """The record of ``key`` as of the last applied entry."""
        ...

    def stage_meta(self, name: bytes, value: bytes | None) -> None: ...

    def meta_items(self, prefix: bytes) -> list[tuple[bytes, bytes]]: ...

    def clear_all(self) -> None: ...

    def clear_slots(self, lo: int, hi: int) -> None: ...


class KVStateMachine:
    """Applies write operations against a :class:`~eraft_twisted.kv.store.KVStore`.

    ``apply(data)`` returns ``(result, writes)``: the client-visible result
    and the ``(key, record_or_None)`` changes to persist with the applied
    index. It reads through ``store.get_record`` which already reflects all
    earlier applied writes.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.resp_addresses: dict[int, str] = {}
        """Where each member serves RESP, as the members announced it."""
        self.shards: SlotOwnership = WholeKeySpace()
        """Which slots this group serves (a ``ShardState`` in sharded mode)."""
        self.log_time = 0
        """The largest leader time applied so far (ms): the clock of expiry."""

    def apply(self, data: bytes) -> Applied:
        """Apply one operation. An entry that does not decode to a known op
        with the right number of arguments changes nothing and answers an
        error (the same on every replica); an exception inside a handler
        is a bug that would let replicas diverge: :class:`ApplyError`."""
        try:
            op, now, *args = msgpack.unpackb(data, raw=False)
            name = Op(op).name.lower()
            handler: Callable[..., Applied] = getattr(self, "_" + name)
            lo, hi = arities(type(self))[name]
            if not lo <= len(args) <= hi or not isinstance(now, int):
                raise TypeError(name)
        except Exception:
            return MALFORMED, []
        self._advance_time(now)
        try:
            if self.shards.sharded() and op in _KEY_ARGS:
                refused = self._refuse(Op(op), args[0])
                if refused is not None:
                    return refused, []
            return handler(self.log_time, *args)
        except Exception as e:
            raise ApplyError(f"applying {Op(op).name} failed: {e!r}") from e

    def _advance_time(self, t: int) -> None:
        """Move ``log_time`` up to ``t`` (never back), as replicated state."""
        if t > self.log_time:
            self.log_time = t
            self.store.stage_meta(b"log_time", _STAMP.pack(t))

    def load_time(self) -> None:
        """Reload ``log_time`` from the replicated state."""
        for name, value in self.store.meta_items(b"log_time"):
            if name == b"log_time":
                self.log_time = _STAMP.unpack(value)[0]
                return
        self.log_time = 0

    def _refuse(self, op: Op, first: Any) -> OpError | None:
        """The refusal if this group does not serve a key of the operation
        (whose first argument is ``first``) now.

        Checked at apply time, so it is ordered with the config changes."""
        kind = _KEY_ARGS[op]
        keys = [first] if kind == "one" else first if kind == "list" else first[::2]
        for key in keys:
            refused = self.shards.check_key(key)
            if refused is not None:
                return refused
        return None

    def _set(
        self, now: int, key: bytes, value: bytes, expire_at: int, cond: int, get: bool
    ) -> Applied:
        record = self.store.get_record(key)
        old = live_value(record, now)
        if (cond == SetCond.NX and old is not None) or (cond == SetCond.XX and old is None):
            return (old if get else None), []
        if expire_at == KEEPTTL:
            expire_at = unpack_record(record)[1] if old is not None and record else 0
        else:
            expire_at = _deadline(expire_at, now)
        if expire_at and expire_at <= now:
            return (old if get else OK), [(key, None)]
        return (old if get else OK), [(key, pack_record(value, expire_at))]

    def _mset(self, now: int, pairs: list[bytes]) -> Applied:
        writes: dict[bytes, bytes | None] = {}
        for i in range(0, len(pairs) - 1, 2):
            writes[pairs[i]] = pack_record(pairs[i + 1], 0)
        return OK, list(writes.items())

    def _del(self, now: int, keys: list[bytes]) -> Applied:
        seen: set[bytes] = set()
        writes: Writes = []
        count = 0
        for k in keys:
            if k in seen:
                continue
            seen.add(k)
            record = self.store.get_record(k)
            if record is not None:
                writes.append((k, None))
                if live_value(record, now) is not None:
                    count += 1
        return count, writes

    def _getdel(self, now: int, key: bytes) -> Applied:
        record = self.store.get_record(key)
        if record is None:
            return None, []
        return live_value(record, now), [(key, None)]

    def _incrby(self, now: int, key: bytes, delta: int) -> Applied:
        record = self.store.get_record(key)
        old = live_value(record, now)
        expire_at = 0
        current = 0
        if old is not None:
            parsed = parse_int(old)
            if parsed is None:
                return OpError("ERR", "value is not an integer or out of range"), []
            current = parsed
            expire_at = unpack_record(record)[1] if record else 0
        new = current + delta
        if new < INT64_MIN or new > INT64_MAX:
            return OpError("ERR", "increment or decrement would overflow"), []
        return new, [(key, pack_record(str(new).encode(), expire_at))]

    def _append(self, now: int, key: bytes, value: bytes) -> Applied:
        record = self.store.get_record(key)
        old = live_value(record, now)
        if old is None:
            return len(value), [(key, pack_record(value, 0))]
        new = old + value
        return len(new), [(key, pack_record(new, unpack_record(record)[1] if record else 0))]

    def _expireat(self, now: int, key: bytes, at: int | list[int], cond: str) -> Applied:
        at_ms = _deadline(at, now)
        record = self.store.get_record(key)
        old = live_value(record, now)
        if old is None or record is None:
            return 0, []
        current = unpack_record(record)[1]
        if cond == "NX" and current:
            return 0, []
        if cond == "XX" and not current:
            return 0, []
        if cond == "GT" and (not current or at_ms <= current):
            return 0, []
        if cond == "LT" and current and at_ms >= current:
            return 0, []
        if at_ms <= now:
            return 1, [(key, None)]
        return 1, [(key, pack_record(old, at_ms))]

    def _persist(self, now: int, key: bytes) -> Applied:
        record = self.store.get_record(key)
        old = live_value(record, now)
        if old is None or record is None or not unpack_record(record)[1]:
            return 0, []
        return 1, [(key, pack_record(old, 0))]

    def _expire_sweep(self, now: int, keys: list[bytes]) -> Applied:
        writes: Writes = []
        for k in keys:
            if self.shards.check_key(k) is not None:
                continue  # not ours (any more): its owner expires it
            record = self.store.get_record(k)
            if record is not None and live_value(record, now) is None:
                writes.append((k, None))
        return len(writes), writes

    def _tick(self, now: int) -> Applied:
        # Only moves log_time (apply did that): keys with a deadline expire
        # on every replica although nothing else is written.
        return OK, []

    def _flushall(self, now: int) -> Applied:
        # Deleting every key one by one would mean a scan here; the store
        # clears whole slot ranges in its writer thread instead.
        if not self.shards.sharded():
            self.store.clear_all()
            return OK, []
        for lo, hi in self.shards.served_ranges():
            self.store.clear_slots(lo, hi)
        return OK, []

    def _member(self, now: int, node_id: int, resp: str) -> Applied:
        self.store.stage_meta(b"resp:%d" % node_id, resp.encode())
        self.resp_addresses[node_id] = resp
        return OK, []

    def load_members(self) -> None:
        """Reload announced RESP addresses from the replicated state."""
        self.resp_addresses = {
            int(name.split(b":", 1)[1]): value.decode()
            for name, value in self.store.meta_items(b"resp:")
        }

    def load_replicated(self) -> None:
        """Reload what this state machine keeps besides the data."""
        self.load_members()
        self.load_time()


def _arity(fn: Callable[..., Applied]) -> tuple[int, int]:
    """(required, total) arguments of a handler, after ``self`` and ``now``."""
    params = list(inspect.signature(fn).parameters.values())[2:]
    return sum(1 for p in params if p.default is p.empty), len(params)


_ARITIES: dict[type, dict[str, tuple[int, int]]] = {}


def arities(cls: type) -> dict[str, tuple[int, int]]:
    """Op name -> (required, total) arguments, for the ops ``cls`` applies."""
    table = _ARITIES.get(cls)
    if table is None:
        table = _ARITIES[cls] = {
            op.name.lower(): _arity(getattr(cls, "_" + op.name.lower()))
            for op in Op
            if hasattr(cls, "_" + op.name.lower())
        }
    return table
