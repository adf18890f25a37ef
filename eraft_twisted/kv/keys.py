"""Operations on keys of any type (RENAME, COPY, ...) and the remaining string ones."""

from __future__ import annotations

import random
from typing import Protocol

from ..hashslot import SLOTS, key_hash_slot
from ..storage import layout
from .collection import DataOps, read_op, refuse, write_op
from .longdouble import add_ld, format_ld, parse_ld
from .numbers import parse_ll
from .records import (
    KeyType,
    is_live,
    pack_string,
    record_expire,
    record_type,
    string_value,
    unpack_meta,
    with_expire,
)
from .results import OK, Applied, WrongType

INT64_MAX = 2**63 - 1
MAX_STRING = 512 * 1024 * 1024
"""Redis's ``proto-max-bulk-len`` default: SETRANGE refuses longer strings."""

_UNITS = {"EX": 1000, "PX": 1, "EXAT": 1000, "PXAT": 1}


class _Owner(Protocol):
    def check_key(self, key: bytes) -> object | None: ...


def expire_error(command: str) -> str:
    return f"invalid expire time in '{command}' command"


class KeyOps(DataOps):
    """RENAME, COPY, TOUCH, RANDOMKEY and the string ops SETEX, GETEX,
    INCRBYFLOAT, GETRANGE, SETRANGE, MSETNX as state machine operations."""

    shards: _Owner

    def _live_string(self, key: bytes, now: int) -> bytes | None:
        """The live record at ``key`` if it is a string; :class:`WrongType` otherwise."""
        record = self.live_record(key, now)
        if record is not None and record_type(record) != KeyType.STRING:
            raise WrongType()
        return record

    def _put_string(self, key: bytes, value: bytes, expire_at: int) -> None:
        self.bury_key(key)
        self.store.stage([(key, pack_string(value, expire_at, self.next_rev()))])

    # -- any type ------------------------------------------------------------
    @write_op("two")
    def op_rename(self, now: int, src: bytes, dst: bytes, nx: bool) -> Applied:
        """Move the record (a collection's rows stay under its slot: O(1))."""
        record = self.live_record(src, now)
        if record is None:
            raise refuse("no such key")
        if src == dst:
            return (0 if nx else OK), []
        if nx and self.live_record(dst, now) is not None:
            return 0, []
        self.delete_key(dst, now)
        moved = with_expire(record, record_expire(record), self.next_rev())
        self.store.stage([(src, None), (dst, moved)])
        return (1 if nx else OK), []

    @write_op("two")
    def op_copy(self, now: int, src: bytes, dst: bytes, replace: bool) -> Applied:
        """Copy ``src`` to ``dst`` (a collection's rows under a new version)."""
        record = self.live_record(src, now)
        if record is None or (not replace and self.live_record(dst, now) is not None):
            return 0, []
        expire_at = record_expire(record)
        if record_type(record) == KeyType.STRING:
            self.delete_key(dst, now)
            self._put_string(dst, string_value(record), expire_at)
            return 1, []
        meta = unpack_meta(record)
        self.delete_key(dst, now)
        rev = self.next_rev()
        copy = meta.changed(rev, version=rev, slot=key_hash_slot(dst))
        for sub, value in self.rows(meta):
            self.put_row(copy, sub, value)
        self.store.stage([(dst, copy.pack())])
        return 1, []

    @read_op("list")
    def op_touch(self, now: int, keys: list[bytes]) -> Applied:
        return sum(1 for k in keys if self.live_record(k, now) is not None), []

    @read_op("none")
    def op_randomkey(self, now: int, seed: int) -> Applied:
        """A live key from a random slot on: the first one at or after it
        in the data area (wrapping around)."""
        start = random.Random(seed).randrange(SLOTS)
        sharded = getattr(self, "shards", None)
        for lo, hi in ((start, SLOTS - 1), (0, start - 1)):
            if lo > hi:
                continue
            first, stop = layout.data_range(lo, hi)
            for db_key, _ in self.store.iterate_rows(first, stop):
                key = layout.user_key(db_key)
                # The store's own view: FLUSHALL may still be clearing disk.
                if not is_live(self.store.get_record(key), now):
                    continue
                if sharded is not None and sharded.check_key(key) is not None:
                    continue
                return key, []
        return None, []

    # -- strings -------------------------------------------------------------
    @write_op()
    def op_setex(self, now: int, key: bytes, value: bytes, ms: int) -> Applied:
        """SET with a relative TTL of ``ms`` (checked by the command)."""
        self._put_string(key, value, min(INT64_MAX, max(1, now + ms)))
        return OK, []

    @write_op("pairs")
    def op_msetnx(self, now: int, pairs: list[bytes]) -> Applied:
        keys = pairs[::2]
        if any(self.live_record(k, now) is not None for k in keys):
            return 0, []
        values = dict(zip(keys, pairs[1::2], strict=False))
        for key, value in values.items():
            self._put_string(key, value, 0)
        return 1, []

    @write_op()
    def op_getex(self, now: int, key: bytes, mode: str, arg: bytes | None) -> Applied:
        """GET, then set (EX PX EXAT PXAT ``arg``) or drop (PERSIST) the TTL."""
        record = self._live_string(key, now)
        if record is None:
            return None, []
        value = string_value(record)
        if mode in _UNITS:
            n = parse_ll(arg or b"")
            if n is None:
                raise refuse("value is not an integer or out of range")
            unit = _UNITS[mode]
            if n <= 0 or n > INT64_MAX // unit:
                raise refuse(expire_error("getex"))
            at = n * unit + (now if mode in ("EX", "PX") else 0)
            if at > INT64_MAX:
                raise refuse(expire_error("getex"))
            if at <= now:
                self.delete_key(key, now)
            else:
                self.store.stage([(key, with_expire(record, at, self.next_rev()))])
        elif mode == "PERSIST" and record_expire(record):
            self.store.stage([(key, with_expire(record, 0, self.next_rev()))])
        return value, []

    @write_op()
    def op_incrbyfloat(self, now: int, key: bytes, incr: bytes) -> Applied:
        record = self._live_string(key, now)
        value = parse_ld(string_value(record) if record is not None else b"0")
        step = parse_ld(incr)
        if value is None or step is None:
            raise refuse("value is not a valid float")
        total = add_ld(value, step)
        if total is None:
            raise refuse("increment would produce NaN or Infinity")
        text = format_ld(total)
        self._put_string(key, text, record_expire(record) if record is not None else 0)
        return text, []

    @read_op()
    def op_getrange(self, now: int, key: bytes, start: int, end: int) -> Applied:
        record = self._live_string(key, now)
        if record is None:
            return b"", []
        value = string_value(record)
        size = len(value)
        if start < 0 and end < 0 and start > end:
            return b"", []
        start = max(0, size + start if start < 0 else start)
        end = max(0, size + end if end < 0 else end)
        end = min(end, size - 1)
        if start > end or size == 0:
            return b"", []
        return value[start : end + 1], []

    @write_op()
    def op_setrange(self, now: int, key: bytes, offset: int, value: bytes) -> Applied:
        record = self._live_string(key, now)
        old = string_value(record) if record is not None else b""
        if not value:
            return len(old), []
        if offset + len(value) > MAX_STRING:
            raise refuse("string exceeds maximum allowed size (proto-max-bulk-len)")
        new = bytearray(old)
        if len(new) < offset + len(value):
            new.extend(bytes(offset + len(value) - len(new)))
        new[offset : offset + len(value)] = value
        self._put_string(key, bytes(new), record_expire(record) if record is not None else 0)
        return len(new), []
