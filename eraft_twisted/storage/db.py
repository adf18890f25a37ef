"""What the storage needs from a LevelDB handle, and bulk deletes over one.

``plyvel.DB`` and :class:`~.memorydb.MemoryDB` both fit :class:`DB`; their
snapshots fit :class:`DBSnapshot`. Only the calls and arguments the
storage uses are declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal, Protocol, TypeVar, overload

from .errors import StorageCorrupt
from .layout import prefix_stop

T = TypeVar("T")


class KeyReader(Protocol):
    """Point reads."""

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None: ...


class RangeReader(Protocol):
    """Ordered iteration, as ``plyvel.DB.iterator``: keys and values, or keys alone."""

    @overload
    def iterator(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        include_start: bool = True,
        include_stop: bool = False,
        prefix: bytes | None = None,
        include_value: Literal[True] = True,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]: ...

    @overload
    def iterator(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        include_start: bool = True,
        include_stop: bool = False,
        prefix: bytes | None = None,
        include_value: Literal[False],
        reverse: bool = False,
    ) -> Iterator[bytes]: ...


class DBSnapshot(KeyReader, RangeReader, Protocol):
    """A frozen, consistent view of a :class:`DB`; ``close`` it when done."""

    def close(self) -> None: ...


class WriteBatch(Protocol):
    """Puts and deletes applied atomically by ``write``."""

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def write(self) -> None: ...


class DB(KeyReader, RangeReader, Protocol):
    """An open LevelDB (or its in-memory twin)."""

    def put(self, key: bytes, value: bytes, sync: bool = False) -> None: ...

    def delete(self, key: bytes, sync: bool = False) -> None: ...

    def write_batch(self, *, sync: bool = False) -> WriteBatch: ...

    def snapshot(self) -> DBSnapshot: ...

    def compact_range(self, *, start: bytes | None = None, stop: bytes | None = None) -> None: ...

    def close(self) -> None: ...


def require(view: KeyReader, key: bytes, where: str) -> bytes:
    """The value of ``key``; StorageCorrupt naming ``where`` if it is missing."""
    value = view.get(key)
    if value is None:
        raise StorageCorrupt(f"{where}: missing {key!r}")
    return bytes(value)


def in_batches(db: DB, items: Iterable[T], chunk: int, add: Callable[[WriteBatch, T], None]) -> int:
    """``add`` each item to a write batch, writing one batch per ``chunk``
    items (so a crash keeps whole chunks); returns the count."""
    count = 0
    batch = db.write_batch()
    for item in items:
        add(batch, item)
        count += 1
        if count % chunk == 0:
            batch.write()
            batch = db.write_batch()
    if count % chunk:
        batch.write()
    return count


def delete_range(db: DB, start: bytes, stop: bytes, chunk: int) -> int:
    """Delete every key in ``[start, stop)`` in batches of ``chunk``; returns the count."""
    keys = db.iterator(start=start, stop=stop, include_value=False)
    return in_batches(db, keys, chunk, lambda batch, key: batch.delete(key))


def delete_prefix(db: DB, prefix: bytes, chunk: int) -> int:
    """Delete every key under ``prefix`` in batches of ``chunk``; returns the count."""
    return delete_range(db, prefix, prefix_stop(prefix), chunk)


def merge_changes(
    base: Iterator[tuple[bytes, bytes]],
    changes: dict[bytes, bytes | None],
    reverse: bool = False,
) -> Iterator[tuple[bytes, bytes]]:
    """``base`` (ordered ``(key, value)`` pairs) with ``changes`` applied on
    top: a value replaces or adds its key, None deletes it. ``changes`` must
    hold only keys of the range ``base`` covers."""
    pending = sorted(changes.items(), reverse=reverse)
    i = 0
    for key, value in base:
        while i < len(pending) and (pending[i][0] > key if reverse else pending[i][0] < key):
            k, v = pending[i]
            i += 1
            if v is not None:
                yield k, v
        if i < len(pending) and pending[i][0] == key:
            v = pending[i][1]
            i += 1
            if v is not None:
                yield key, v
            continue
        yield key, value
    for k, v in pending[i:]:
        if v is not None:
            yield k, v
