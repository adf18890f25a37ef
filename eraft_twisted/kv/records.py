"""The record stored under a user key (``layout.data_key``): a string's
value, or a collection's metadata row.

Two forms, told apart by the first byte::

    <expire_at:8 signed BE> <value>            a string written before
                                                types existed (first byte
                                                < 0x80: a deadline is never
                                                negative)
    <0x80|type:1> <expire_at:8> <rev:8> ...     every record written now

and after ``rev`` a string has its value, a collection
``<version:8> <count:8> <slot:2>`` and a list also ``<head:8> <tail:8>``.

``expire_at`` is the deadline in the log's time (ms, 0 = none). ``rev`` is
the state machine's write counter when the key last changed (what WATCH
compares). A collection's fields / members / elements are rows
``layout.row_key(slot, version, sub)``: ``version`` is unique within the
group and never reused, so deleting or replacing a collection only drops
its record (O(1)); its rows are removed later, through the log
(``layout.garbage_key``). ``count`` is the number of rows that are
members (a sorted set also keeps a score index, which is not counted).
"""

from __future__ import annotations

import struct
from enum import IntEnum

from ..storage import layout
from .results import WrongType

_HEAD = struct.Struct(">Bqq")
_COLL = struct.Struct(">BqqQqH")
_LIST = struct.Struct(">BqqQqHqq")
_EXP = struct.Struct(">q")
TAGGED = 0x80


class KeyType(IntEnum):
    """The type of a key's value (stable: stored in records)."""

    STRING = 0
    HASH = 1
    LIST = 2
    SET = 3
    ZSET = 4


TYPE_NAMES = {
    KeyType.STRING: "string",
    KeyType.HASH: "hash",
    KeyType.LIST: "list",
    KeyType.SET: "set",
    KeyType.ZSET: "zset",
}
TYPE_BY_NAME = {name.encode(): t for t, name in TYPE_NAMES.items()}


_TYPES = tuple(KeyType)
"""KeyType by value, without an enum lookup (a record is typed on every read)."""
_LIST_TAG = TAGGED | KeyType.LIST


def record_type(record: bytes) -> KeyType:
    """The type of the value a record holds."""
    first = record[0]
    return _TYPES[first & 0x7F] if first & TAGGED else KeyType.STRING


def record_expire(record: bytes) -> int:
    """The record's deadline (log time, ms; 0 = none)."""
    if record[0] & TAGGED:
        return int(_EXP.unpack_from(record, 1)[0])
    return int(_EXP.unpack_from(record, 0)[0])


def record_rev(record: bytes) -> int:
    """The write counter when the key last changed (0: written before revisions)."""
    if record[0] & TAGGED:
        return int(_EXP.unpack_from(record, 9)[0])
    return 0


def is_live(record: bytes | None, now_ms: int) -> bool:
    """Whether a record exists and has not expired at ``now_ms``."""
    if record is None:
        return False
    exp = record_expire(record)
    return not exp or exp > now_ms


def pack_string(value: bytes, expire_at: int, rev: int) -> bytes:
    """A string's record."""
    return _HEAD.pack(TAGGED, expire_at, rev) + value


def string_value(record: bytes) -> bytes:
    """The value of a string's record (either form)."""
    return record[_HEAD.size :] if record[0] & TAGGED else record[8:]


def with_expire(record: bytes, expire_at: int, rev: int) -> bytes:
    """``record`` with a new deadline, stamped with ``rev``."""
    if not record[0] & TAGGED:
        return pack_string(record[8:], expire_at, rev)
    return record[:1] + _HEAD.pack(0, expire_at, rev)[1:] + record[_HEAD.size :]


class Meta:
    """A collection's metadata row, decoded. Treat it as immutable:
    :meth:`changed` makes a changed copy. (A plain class with slots, not a
    frozen dataclass: one is built several times per collection write, and
    a frozen dataclass's constructor costs three times as much.)"""

    __slots__ = ("type", "expire_at", "rev", "version", "count", "slot", "head", "tail", "_prefix")

    def __init__(
        self,
        type: KeyType,
        expire_at: int,
        rev: int,
        version: int,
        count: int,
        slot: int,
        head: int = 0,
        tail: int = 0,
        _prefix: bytes = b"",
    ) -> None:
        self.type = type
        self.expire_at = expire_at
        self.rev = rev
        self.version = version
        self.count = count
        self.slot = slot
        """The hash slot its rows are stored under (its key's, when created)."""
        self.head = head
        self.tail = tail
        """A list's elements sit at positions ``head <= i < tail``."""
        self._prefix = _prefix

    def _fields(self) -> tuple[int, ...]:
        return (
            self.type,
            self.expire_at,
            self.rev,
            self.version,
            self.count,
            self.slot,
            self.head,
            self.tail,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Meta) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        pairs = zip(self.__slots__[:-1], self._fields(), strict=True)
        return "Meta(" + ", ".join(f"{n}={v!r}" for n, v in pairs) + ")"

    @property
    def prefix(self) -> bytes:
        """The DB key prefix of its rows (``layout.rows_prefix``)."""
        prefix = self._prefix
        if not prefix:
            prefix = self._prefix = layout.rows_prefix(self.slot, self.version)
        return prefix

    def pack(self, rev: int | None = None) -> bytes:
        """The record; stamped with ``rev`` instead of its own if given."""
        if rev is None:
            rev = self.rev
        if self.type == KeyType.LIST:
            return _LIST.pack(
                TAGGED | self.type,
                self.expire_at,
                rev,
                self.version,
                self.count,
                self.slot,
                self.head,
                self.tail,
            )
        return _COLL.pack(TAGGED | self.type, self.expire_at, rev, self.version, self.count, self.slot)

    def changed(
        self,
        rev: int,
        *,
        count: int | None = None,
        head: int | None = None,
        tail: int | None = None,
        expire_at: int | None = None,
        version: int | None = None,
        slot: int | None = None,
    ) -> Meta:
        """A copy stamped with ``rev`` and the given fields changed."""
        same_rows = version is None and slot is None
        return Meta(
            self.type,
            self.expire_at if expire_at is None else expire_at,
            rev,
            self.version if version is None else version,
            self.count if count is None else count,
            self.slot if slot is None else slot,
            self.head if head is None else head,
            self.tail if tail is None else tail,
            self._prefix if same_rows else b"",
        )


def unpack_meta(record: bytes) -> Meta:
    """Decode a collection's record (the caller checked its type)."""
    if record[0] == _LIST_TAG:
        t, exp, rev, version, count, slot, head, tail = _LIST.unpack_from(record)
        return Meta(KeyType.LIST, exp, rev, version, count, slot, head, tail)
    t, exp, rev, version, count, slot = _COLL.unpack_from(record)
    return Meta(_TYPES[t & 0x7F], exp, rev, version, count, slot)


def string_of(record: bytes | None) -> bytes | None:
    """The value of a (live) string record, None for no record;
    :class:`~.results.WrongType` for a key of another type."""
    if record is None:
        return None
    if record[0] & TAGGED and record[0] != TAGGED | KeyType.STRING:
        raise WrongType()
    return string_value(record)
