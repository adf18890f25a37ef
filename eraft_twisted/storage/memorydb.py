"""An in-memory stand-in for the subset of ``plyvel.DB`` the storage uses.

``LevelDBStorage.in_memory()`` runs the real storage code over it, so
tests of the layers above get the exact LevelDB semantics (ordering,
atomic batches, snapshots) without files. Not for production.

Durability is modelled too. A write reaches the contents at once (the OS
page cache: every read sees it, and a process crash -- reusing the same
object -- keeps it), but survives :meth:`MemoryDB.crash` (a power cut)
only once a synced write (``sync=True``) or :meth:`MemoryDB.sync` came
after it. Like LevelDB's sequential log, a sync makes every earlier write
durable, so the twin after a power cut holds a prefix of the writes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Literal, overload

from .layout import prefix_stop


def _put_all(items: dict[bytes, bytes], ops: Iterable[tuple[bytes, bytes | None]]) -> None:
    for k, v in ops:
        if v is None:
            items.pop(k, None)
        else:
            items[k] = v


class _Ordered:
    """Ordered iteration over sorted keys, as ``plyvel``'s ``iterator``."""

    def _view(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        """The contents and their keys in order."""
        raise NotImplementedError

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

    def iterator(
        self,
        *,
        start: bytes | None = None,
        stop: bytes | None = None,
        include_start: bool = True,
        include_stop: bool = False,
        prefix: bytes | None = None,
        include_value: bool = True,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]] | Iterator[bytes]:
        """Like ``plyvel.DB.iterator`` (the subset of arguments used here)."""
        items, keys = self._view()
        if prefix is not None:
            start, stop, include_start, include_stop = prefix, prefix_stop(prefix), True, False
        lo = 0 if start is None else bisect_left(keys, start)
        if start is not None and not include_start and lo < len(keys) and keys[lo] == start:
            lo += 1
        hi = len(keys) if stop is None else bisect_left(keys, stop)
        if stop is not None and include_stop and hi < len(keys) and keys[hi] == stop:
            hi += 1
        # Materialised now: a LevelDB iterator reads an implicit snapshot.
        chosen = keys[lo:hi]
        if reverse:
            chosen.reverse()
        if include_value:
            return iter([(k, items[k]) for k in chosen])
        return iter(chosen)


class MemorySnapshot(_Ordered):
    """A frozen view of a :class:`MemoryDB`, like ``plyvel.Snapshot``."""

    def __init__(self, items: dict[bytes, bytes]) -> None:
        self._items = items
        self._keys = sorted(items)

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """The value of ``key`` when the snapshot was taken."""
        return self._items.get(key, default)

    def _view(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        return self._items, self._keys

    def close(self) -> None:
        """Release the snapshot (nothing to do in memory)."""

    release = close


class MemoryWriteBatch:
    """A batch applied atomically by :meth:`write`, like ``plyvel.WriteBatch``."""

    def __init__(self, db: MemoryDB, sync: bool = False) -> None:
        self._db = db
        self._sync = sync
        self._ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        """Queue a put."""
        if not isinstance(key, bytes) or not isinstance(value, bytes):
            raise TypeError("keys and values must be bytes")
        self._ops.append((key, value))

    def delete(self, key: bytes) -> None:
        """Queue a delete."""
        if not isinstance(key, bytes):
            raise TypeError("keys must be bytes")
        self._ops.append((key, None))

    def clear(self) -> None:
        """Forget the queued operations."""
        self._ops.clear()

    def write(self) -> None:
        """Apply every queued operation at once (durably if the batch syncs)."""
        self._db._apply(self._ops, self._sync)
        self._ops = []

    def __enter__(self) -> MemoryWriteBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.write()


class MemoryDB(_Ordered):
    """A sorted in-memory key-value store with the plyvel calls storage needs.

    ``items`` is the initial, already durable, contents.
    """

    def __init__(self, items: dict[bytes, bytes] | None = None) -> None:
        self._items: dict[bytes, bytes] = dict(items or {})
        self._keys: list[bytes] | None = None
        self._durable: dict[bytes, bytes] = dict(self._items)
        self._unsynced: list[tuple[tuple[bytes, bytes | None], ...]] = []
        self.closed = False
        self.syncs = 0
        """How many times unsynced writes were made durable."""

    def _check(self) -> None:
        if self.closed:
            raise RuntimeError("Database is closed")

    def _sorted(self) -> list[bytes]:
        if self._keys is None:
            self._keys = sorted(self._items)
        return self._keys

    def _apply(self, ops: list[tuple[bytes, bytes | None]], sync: bool = False) -> None:
        self._check()
        _put_all(self._items, ops)
        self._keys = None
        if ops:
            self._unsynced.append(tuple(ops))
        if sync:
            self.sync()

    def sync(self) -> None:
        """Make every write so far durable (a synced write, or the OS flushing its cache)."""
        if self._unsynced:
            for ops in self._unsynced:
                _put_all(self._durable, ops)
            self._unsynced.clear()
            self.syncs += 1

    @property
    def unsynced_writes(self) -> int:
        """Writes (batches or single puts/deletes) a power cut would lose now."""
        return len(self._unsynced)

    def crash(self, keep_unsynced: int = 0) -> MemoryDB:
        """Cut the power: this DB is closed; returns the twin as found at reboot.

        The twin holds every synced write and the first ``keep_unsynced``
        unsynced ones (the disk may have written some back by itself);
        the rest are lost. Reopen it with ``LevelDBStorage.in_memory(db=...)``.
        """
        items = dict(self._durable)
        for ops in self._unsynced[: max(0, keep_unsynced)]:
            _put_all(items, ops)
        self.closed = True
        return MemoryDB(items)

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """The value of ``key``, or ``default``."""
        self._check()
        return self._items.get(key, default)

    def put(self, key: bytes, value: bytes, sync: bool = False) -> None:
        """Set one key."""
        self._apply([(key, value)], sync)

    def delete(self, key: bytes, sync: bool = False) -> None:
        """Delete one key."""
        self._apply([(key, None)], sync)

    def write_batch(self, *, sync: bool = False, transaction: bool = False) -> MemoryWriteBatch:
        """A new batch; with ``sync`` its write makes everything so far durable."""
        self._check()
        return MemoryWriteBatch(self, sync)

    def _view(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        self._check()
        return self._items, self._sorted()

    def compact_range(self, *, start: bytes | None = None, stop: bytes | None = None) -> None:
        """Nothing to compact in memory."""

    def snapshot(self) -> MemorySnapshot:
        """A frozen copy of the current contents."""
        self._check()
        return MemorySnapshot(dict(self._items))

    def close(self) -> None:
        """Refuse further use, like a closed plyvel DB."""
        self.closed = True
