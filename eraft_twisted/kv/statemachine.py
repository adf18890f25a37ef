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
from enum import IntEnum
from typing import Protocol

import msgpack

from ..hashslot import SLOTS
from ..storage import layout
from .collection import RowStore, op_keys, write_op
from .hashes import HashOps
from .keys import KeyOps
from .lists import ListOps
from .numbers import parse_ll
from .records import (
    KeyType,
    is_live,
    pack_string,
    record_expire,
    record_type,
    string_of,
    string_value,
    with_expire,
)
from .results import MALFORMED, Applied, OpError, Refused, Result, WrongType
from .results import OK as OK
from .results import WRONGTYPE as WRONGTYPE
from .results import Writes as Writes
from .sets import SetOps
from .strings import StringReads
from .zsets import ZSetOps

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
    INSTALL_ROWS = 19
    DROP_ROWS = 20


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

_STAMP = struct.Struct(">Q")


def encode_op(op: Op | str, now_ms: int, *args: object) -> bytes:
    """Serialise a write for the log: a msgpack array (at most 15 elements)
    of the op (a code, or the name of a named op, as a fixstr), then the
    time as a uint64 right after it, so the leader can restamp it without
    decoding."""
    if len(args) > 13:
        raise ValueError("an operation takes at most 13 arguments")
    code = bytes((int(op),)) if isinstance(op, Op) else msgpack.packb(op)
    head = bytes((0x90 | (2 + len(args)),)) + code + b"\xcf" + _STAMP.pack(max(0, now_ms))
    return head + b"".join(msgpack.packb(a, use_bin_type=True) for a in args)


def _stamp_at(data: bytes) -> int:
    """Where the time of an :func:`encode_op` entry is, or -1."""
    if len(data) < 3 or data[0] & 0xF0 != 0x90:
        return -1
    first = data[1]
    at = 2 if first < 0x80 else 2 + (first & 0x1F) if first & 0xE0 == 0xA0 else -1
    return at + 1 if 0 < at < len(data) - 8 and data[at] == 0xCF else -1


def stamp_op(data: bytes, now_ms: int) -> bytes:
    """``data`` with its time replaced by ``now_ms`` (the leader's clock)."""
    at = _stamp_at(data)
    if at > 0:
        return data[:at] + _STAMP.pack(max(0, now_ms)) + data[at + 8 :]
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


def pack_record(value: bytes, expire_at: int, rev: int = 0) -> bytes:
    """A string's record (see :mod:`.records`)."""
    return pack_string(value, expire_at, rev)


def unpack_record(record: bytes) -> tuple[bytes, int]:
    """(value, expire_at_ms) of a string's record (either form)."""
    return string_value(record), record_expire(record)


def live_value(record: bytes | None, now_ms: int) -> bytes | None:
    """The string value of a record unless it is absent or expired at
    ``now_ms``; :class:`WrongType` if it holds another type."""
    if record is None or not is_live(record, now_ms):
        return None
    return string_of(record)


parse_int = parse_ll
"""Redis's strict integer parsing (no spaces, no '+', fits in int64)."""


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


class StateStore(RowStore, Protocol):
    """What applying reads and stages besides the writes it returns (a
    :class:`~eraft_twisted.kv.store.KVStore`)."""

    def clear_all(self) -> None: ...

    def clear_slots(self, lo: int, hi: int) -> None: ...


class KVStateMachine(HashOps, SetOps, ListOps, ZSetOps, KeyOps, StringReads):
    """Applies write operations against a :class:`~eraft_twisted.kv.store.KVStore`.

    ``apply(data)`` returns ``(result, writes)``: the client-visible result
    and the ``(key, record_or_None)`` changes to persist with the applied
    index. It reads through ``store.get_record`` which already reflects all
    earlier applied writes.
    """

    store: StateStore

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
            if not isinstance(now, int):
                raise TypeError("time")
            name, handler, keys = self._resolve(op, len(args))
        except Exception:
            return MALFORMED, []
        self._advance_time(now)
        try:
            if keys != "none" and self.shards.sharded():
                for key in op_keys(keys, args):
                    refused = self.shards.check_key(key)
                    if refused is not None:
                        return refused, []
            return handler(self.log_time, *args)
        except Refused as r:
            return r.err, []
        except Exception as e:
            raise ApplyError(f"applying {name.upper()} failed: {e!r}") from e

    def _resolve(self, op: object, argc: int) -> tuple[str, Callable[..., Applied], str]:
        """(name, handler, where its keys are) of a decoded op code; raises
        if there is no such op or ``argc`` does not fit it."""
        if isinstance(op, str):
            spec = named_ops(type(self)).get(op)
            if spec is None:
                raise KeyError(op)
            lo, hi, keys, _ = spec
            handler: Callable[..., Applied] = getattr(self, "op_" + op)
            name = op
        else:
            code = Op(int(op))  # type: ignore[call-overload]
            name = code.name.lower()
            handler = getattr(self, "_" + name)
            lo, hi = arities(type(self))[name]
            keys = _KEY_ARGS.get(code, "none")
        if not lo <= argc <= hi:
            raise TypeError(name)
        return name, handler, keys

    @write_op("none")
    def op_exec(self, now: int, watched: list[bytes | int], calls: list[list[object]]) -> Applied:
        """A transaction (MULTI ... EXEC) as one entry: nil, changing
        nothing, if a watched key's revision is not the one WATCH read
        (``watched``: key, revision, ...); else every call (``[op,
        args...]``) in order, each seeing the ones before, and the list of
        their results (a refused call answers its error; the others apply)."""
        for i in range(0, len(watched) - 1, 2):
            key, rev = watched[i], watched[i + 1]
            if not isinstance(key, bytes) or self.revision(key, now) != rev:
                return None, []
        resolved: list[tuple[tuple[str, Callable[..., Applied], str], list[object]] | None] = []
        for call in calls:
            try:
                op, *args = call
                if op == "exec":
                    raise ValueError("nested")
                resolved.append((self._resolve(op, len(args)), args))
            except Exception:
                resolved.append(None)
        if self.shards.sharded():
            keys = [k for c in resolved if c is not None for k in op_keys(c[0][2], c[1])]
            keys.extend(k for k in watched[::2] if isinstance(k, bytes))
            for key in keys:
                refused = self.shards.check_key(key)
                if refused is not None:
                    return refused, []
        results: list[Result] = []
        for entry in resolved:
            if entry is None:
                results.append(MALFORMED)
                continue
            (_, handler, _), args = entry
            try:
                result, writes = handler(now, *args)
            except Refused as r:
                results.append(r.err)
                continue
            self.store.stage(writes)
            results.append(result)
        return results, []

    def read(self, name: str, args: list[object], writes: bool = False) -> Result:
        """Answer the read op ``name`` on the applied state at the log's
        time (with ``writes``, also a write op that will change nothing:
        a transaction of reads only)."""
        spec = named_ops(type(self)).get(name)
        if spec is None or not spec[0] <= len(args) <= spec[1]:
            raise KeyError(name)
        if spec[3] != "read" and not writes:
            raise KeyError(name)
        try:
            result, _ = getattr(self, "op_" + name)(self.log_time, *args)
        except Refused as r:
            return r.err
        return result

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

    def _string(self, value: bytes, expire_at: int) -> bytes:
        return pack_string(value, expire_at, self.next_rev())

    def _set(
        self, now: int, key: bytes, value: bytes, expire_at: int, cond: int, get: bool
    ) -> Applied:
        stored = self.store.get_record(key)
        record = stored if is_live(stored, now) else None
        # SET replaces a value of any type; SET ... GET answers WRONGTYPE.
        is_string = record is not None and record_type(record) == KeyType.STRING
        if get and record is not None and not is_string:
            raise WrongType()
        old = string_value(record) if record is not None and is_string else None
        exists = record is not None
        if (cond == SetCond.NX and exists) or (cond == SetCond.XX and not exists):
            return (old if get else None), []
        if expire_at == KEEPTTL:
            expire_at = record_expire(record) if record is not None else 0
        else:
            expire_at = _deadline(expire_at, now)
        self.bury(stored)  # an expired collection's rows too
        if expire_at and expire_at <= now:
            return (old if get else OK), [(key, None)]
        return (old if get else OK), [(key, self._string(value, expire_at))]

    def _mset(self, now: int, pairs: list[bytes]) -> Applied:
        writes: dict[bytes, bytes | None] = {}
        for i in range(0, len(pairs) - 1, 2):
            if pairs[i] not in writes:
                self.bury_key(pairs[i])
            writes[pairs[i]] = self._string(pairs[i + 1], 0)
        return OK, list(writes.items())

    def _del(self, now: int, keys: list[bytes]) -> Applied:
        count = 0
        for k in dict.fromkeys(keys):
            if self.delete_key(k, now):
                count += 1
        return count, []

    def _getdel(self, now: int, key: bytes) -> Applied:
        record = self.store.get_record(key)
        if record is None:
            return None, []
        value = live_value(record, now)
        return value, [(key, None)]

    def _incrby(self, now: int, key: bytes, delta: int) -> Applied:
        record = self.store.get_record(key)
        old = live_value(record, now)
        expire_at = 0
        current = 0
        if old is not None and record is not None:
            parsed = parse_int(old)
            if parsed is None:
                return OpError("ERR", "value is not an integer or out of range"), []
            current = parsed
            expire_at = record_expire(record)
        new = current + delta
        if new < INT64_MIN or new > INT64_MAX:
            return OpError("ERR", "increment or decrement would overflow"), []
        return new, [(key, self._string(str(new).encode(), expire_at))]

    def _append(self, now: int, key: bytes, value: bytes) -> Applied:
        record = self.store.get_record(key)
        old = live_value(record, now)
        if old is None or record is None:
            return len(value), [(key, self._string(value, 0))]
        new = old + value
        return len(new), [(key, self._string(new, record_expire(record)))]

    def _expireat(self, now: int, key: bytes, at: int | list[int], cond: str) -> Applied:
        at_ms = _deadline(at, now)
        record = self.live_record(key, now)
        if record is None:
            return 0, []
        current = record_expire(record)
        if cond == "NX" and current:
            return 0, []
        if cond == "XX" and not current:
            return 0, []
        if cond == "GT" and (not current or at_ms <= current):
            return 0, []
        if cond == "LT" and current and at_ms >= current:
            return 0, []
        if at_ms <= now:
            self.delete_key(key, now)
            return 1, []
        return 1, [(key, with_expire(record, at_ms, self.next_rev()))]

    def _persist(self, now: int, key: bytes) -> Applied:
        record = self.live_record(key, now)
        if record is None or not record_expire(record):
            return 0, []
        return 1, [(key, with_expire(record, 0, self.next_rev()))]

    def _expire_sweep(self, now: int, keys: list[bytes]) -> Applied:
        count = 0
        for k in keys:
            if self.shards.check_key(k) is not None:
                continue  # not ours (any more): its owner expires it
            record = self.store.get_record(k)
            if record is not None and not is_live(record, now):
                self.delete_key(k, now)
                count += 1
        return count, []

    def _drop_rows(
        self, now: int, slot: int, version: int, subs: list[bytes], done: bool
    ) -> Applied:
        """Remove rows of a dead collection version (the leader lists them);
        ``done``: they were the last, the marker goes too."""
        for sub in subs:
            self.store.stage_row(layout.row_key(slot, version, sub), None)
        if done:
            self.store.stage_row(layout.garbage_key(slot, version), None)
        return len(subs), []

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
        self.load_rev()


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


_NAMED: dict[type, dict[str, tuple[int, int, str, str]]] = {}


def named_ops(cls: type) -> dict[str, tuple[int, int, str, str]]:
    """Name -> (required, total arguments, where its keys are, "read" or
    "write") of the named operations ``cls`` has (``op_<name>`` methods
    marked with ``write_op`` / ``read_op``)."""
    table = _NAMED.get(cls)
    if table is None:
        table = {}
        for attr in dir(cls):
            fn = getattr(cls, attr)
            kind = getattr(fn, "op_kind", None)
            if attr.startswith("op_") and kind is not None:
                lo, hi = _arity(fn)
                table[attr[3:]] = (lo, hi, fn.op_keys, kind)
        _NAMED[cls] = table
    return table
