"""What every data operation of the state machine builds on: named
operations, the write counter, and reading and writing keys, collections
and their rows (the encoding is in :mod:`.records`).

A named operation is a method ``op_<name>(self, now, key, ...)`` marked
with :func:`write_op` or :func:`read_op`. Its log entry is
``[name, now_ms, args...]`` (msgpack; the older ops use an integer code).
The same method answers a read after the ReadIndex barrier (with ``now``
the log's time) and, later, a command inside a transaction, so a command's
behaviour is written once.

An operation stages what it changes through the store as it goes (rows,
records, garbage markers); it raises :class:`Refused` (WRONGTYPE, a bad
value) only before it changed anything. It returns ``(result, [])``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Literal, Protocol, TypeVar

from ..hashslot import key_hash_slot
from ..storage import layout
from .records import KeyType, Meta, is_live, record_type, unpack_meta
from .results import Applied, OpError, Refused, Writes, WrongType

KeyArgs = Literal["one", "list", "pairs", "two", "none"]
"""Where an operation's keys are: its first argument (``one``), a list in its
first argument (``list``), key/value pairs in it (``pairs``), the first two
arguments (``two``), or none."""

F = TypeVar("F", bound=Callable[..., Applied])

_REV = struct.Struct(">Q")


def _marker(kind: str, keys: KeyArgs) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        fn.op_kind = kind  # type: ignore[attr-defined]
        fn.op_keys = keys  # type: ignore[attr-defined]
        return fn

    return mark


def write_op(keys: KeyArgs = "one") -> Callable[[F], F]:
    """Mark ``op_<name>`` as a write operation whose keys are ``keys``."""
    return _marker("write", keys)


def read_op(keys: KeyArgs = "one") -> Callable[[F], F]:
    """Mark ``op_<name>`` as a read: it changes nothing."""
    return _marker("read", keys)


def op_keys(kind: str, args: list[object]) -> list[bytes]:
    """The keys among an operation's arguments."""
    if kind == "one":
        return [args[0]] if isinstance(args[0], bytes) else []
    if kind == "two":
        return [a for a in args[:2] if isinstance(a, bytes)]
    if kind in ("list", "pairs"):
        first = args[0]
        if not isinstance(first, list):
            return []
        keys = first if kind == "list" else first[::2]
        return [k for k in keys if isinstance(k, bytes)]
    return []


class RowStore(Protocol):
    """What the data operations read and stage (a ``KVStore``)."""

    def get_record(self, key: bytes) -> bytes | None: ...

    def stage(self, writes: Writes) -> None: ...

    def get_row(self, db_key: bytes) -> bytes | None: ...

    def stage_row(self, db_key: bytes, value: bytes | None) -> None: ...

    def iterate_rows(
        self, start: bytes, stop: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]: ...

    def stage_meta(self, name: bytes, value: bytes | None) -> None: ...

    def meta_items(self, prefix: bytes) -> list[tuple[bytes, bytes]]: ...


class DataOps:
    """The helpers data operations share; :class:`KVStateMachine` and the
    per-type operation classes derive from it."""

    store: RowStore
    rev: int = 0
    """The write counter: the last revision handed out. Versions and
    revisions come from it, so they are unique within the group and never
    reused (installed keys move it past theirs)."""

    # -- the counter ---------------------------------------------------------
    def next_rev(self) -> int:
        """A new revision (replicated: every replica counts the same)."""
        self.rev += 1
        self.store.stage_meta(b"rev", _REV.pack(self.rev))
        return self.rev

    def seen_rev(self, rev: int) -> None:
        """Move the counter past ``rev`` (a revision or version installed
        from another group), so none is handed out twice."""
        if rev > self.rev:
            self.rev = rev
            self.store.stage_meta(b"rev", _REV.pack(rev))

    def load_rev(self) -> None:
        """Reload the counter from the replicated state."""
        self.rev = 0
        for name, value in self.store.meta_items(b"rev"):
            if name == b"rev":
                self.rev = _REV.unpack(value)[0]

    # -- keys ----------------------------------------------------------------
    def live_record(self, key: bytes, now: int) -> bytes | None:
        """The record of ``key`` unless it is absent or expired at ``now``."""
        record = self.store.get_record(key)
        return record if record is not None and is_live(record, now) else None

    def collection(self, key: bytes, now: int, kind: KeyType) -> Meta | None:
        """The live collection at ``key``, None if there is none;
        :class:`WrongType` if the key holds another type."""
        record = self.live_record(key, now)
        if record is None:
            return None
        if record_type(record) != kind:
            raise WrongType()
        return unpack_meta(record)

    def new_collection(self, key: bytes, kind: KeyType) -> Meta:
        """Metadata of an empty collection for ``key`` (not stored until
        :meth:`save` with a count above zero). Buries what ``key`` held."""
        self.bury_key(key)
        rev = self.next_rev()
        return Meta(kind, 0, rev, rev, 0, key_hash_slot(key))

    def save(self, key: bytes, meta: Meta) -> None:
        """Store ``meta`` (stamped with a new revision); an empty collection
        is deleted instead, as Redis does."""
        if meta.count <= 0:
            self.store.stage([(key, None)])
            return
        self.store.stage([(key, meta.pack(self.next_rev()))])

    def delete_key(self, key: bytes, now: int) -> bool:
        """Delete ``key`` whatever it holds; True if it was live."""
        record = self.store.get_record(key)
        if record is None:
            return False
        live = is_live(record, now)
        self.bury(record)
        self.store.stage([(key, None)])
        return live

    def bury_key(self, key: bytes) -> None:
        """If ``key`` holds a collection (live or expired), mark its rows
        for removal; its record is about to be replaced or deleted."""
        self.bury(self.store.get_record(key))

    def bury(self, record: bytes | None) -> None:
        """:meth:`bury_key` for a record the caller has read already."""
        if record is None or record_type(record) == KeyType.STRING:
            return
        meta = unpack_meta(record)
        if meta.count > 0:
            self.store.stage_row(layout.garbage_key(meta.slot, meta.version), b"")

    # -- rows ----------------------------------------------------------------
    def get_row(self, meta: Meta, sub: bytes) -> bytes | None:
        return self.store.get_row(meta.prefix + sub)

    def put_row(self, meta: Meta, sub: bytes, value: bytes) -> None:
        self.store.stage_row(meta.prefix + sub, value)

    def del_row(self, meta: Meta, sub: bytes) -> None:
        self.store.stage_row(meta.prefix + sub, None)

    def rows(
        self,
        meta: Meta,
        start: bytes = b"",
        stop: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(sub key, value)`` of the collection's rows with ``start <= sub
        < stop`` (``stop`` None: to the end), in order or ``reverse``d.
        Lazy: the caller bounds how many it reads."""
        prefix = meta.prefix
        lo = prefix + start
        hi = prefix + stop if stop is not None else layout.prefix_stop(prefix)
        cut = layout.ROW_HEADER
        for db_key, value in self.store.iterate_rows(lo, hi, reverse):
            yield db_key[cut:], value


def refuse(message: str, code: str = "ERR") -> Refused:
    """A refusal to raise from an operation: ``-CODE message``."""
    return Refused(OpError(code, message))
