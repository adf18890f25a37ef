"""A node's persistent state in one LevelDB: raft log, hard state, KV data.

:class:`LevelDBStorage` implements the raft core's read-only
:class:`~eraft_twisted.raft.storage.Storage` protocol and offers write
methods that each become one atomic LevelDB write batch on the
:class:`~.writer.Writer` thread. What the core reads is updated when a
write has completed, just before its Deferred fires, so once
``persist(...)``'s Deferred fired the core may read what was persisted;
nothing else needs to be called.

The log is not held in RAM: a :class:`~.raftlog.LogShape` keeps its
terms and sizes (a few bytes per entry, so ``term()`` never reads disk),
an :class:`~.raftlog.EntryCache` keeps the most recent entries (bounded
by bytes and count), and older entries are read back from LevelDB. Two
shapes are kept: the *pending* one, updated when a write is submitted
(to validate calls and to compute which stale keys to delete, so writes
may be pipelined), and the *durable* one that serves reads, updated on
completion. Both follow MemoryStorage's semantics exactly.

Crash safety rests on two LevelDB properties: a write batch is atomic,
and after a crash the database holds a prefix of the writes (its log is
sequential), so a synced write being durable implies every earlier
write is. Applied data and the applied index share a batch, so a crash
never loses an applied write nor applies one twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import replace
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

import msgpack
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure

from eraft_twisted.raft.storage import Storage
from eraft_twisted.raft.types import (
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMeta,
)

from .layout import (
    APPLIED_KEY,
    CONF_STATE_KEY,
    DATA_PREFIX,
    HARD_STATE_KEY,
    INSTALL_KEY,
    LAYOUT_VERSION,
    LOG_PREFIX,
    LOG_START_KEY,
    SM_PREFIX,
    SNAPSHOT_KEY,
    STAGING_PREFIX,
    VERSION_KEY,
    data_key,
    data_range,
    decode_applied,
    decode_conf_state,
    decode_entry,
    decode_hard_state,
    decode_items,
    decode_snapshot_meta,
    encode_applied,
    encode_conf_state,
    encode_entry,
    encode_hard_state,
    encode_snapshot_meta,
    log_index,
    log_key,
    pack,
    prefix_stop,
    user_key,
)
from .memorydb import MemoryDB
from .raftlog import LOG_CACHE_BYTES, LOG_CACHE_ENTRIES, EntryCache, LogShape, read_entries
from .readpool import ReadPool
from .writer import FsyncPolicy, Op, Writer

T = TypeVar("T")

INSTALL_CLEAR = 0
INSTALL_MOVE = 1
INSTALL_CHUNK = 8192
MAX_OPEN_FILES = 64
"""LevelDB's table cache: at most ~54 tables (~2 MiB each) mapped at once;
LevelDB's own default of 1000 lets ~2 GiB of data files count in RSS."""
"""Operations per batch while moving a received snapshot into place."""


class StorageError(Exception):
    """Base class of storage errors."""


class StorageLocked(StorageError):
    """Another process (or opening) holds the data directory."""

    def __init__(self, path: str) -> None:
        super().__init__(f"data directory {path} is in use by another process")
        self.path = path


class StorageCorrupt(StorageError):
    """The data directory does not hold a valid eraft-twisted database."""


class StorageFailed(StorageError):
    """An earlier write failed; what is on disk is unknown, the node must stop."""


def _delete_range(db: Any, start: bytes, stop: bytes, chunk: int) -> int:
    """Delete every key in ``[start, stop)`` in batches of ``chunk``."""
    count = 0
    batch = db.write_batch()
    for key in db.iterator(start=start, stop=stop, include_value=False):
        batch.delete(key)
        count += 1
        if count % chunk == 0:
            batch.write()
            batch = db.write_batch()
    if count % chunk:
        batch.write()
    return count


def _delete_prefix(db: Any, prefix: bytes, chunk: int = INSTALL_CHUNK) -> int:
    """Delete every key under ``prefix`` in batches of ``chunk``; returns the count."""
    return _delete_range(db, prefix, prefix_stop(prefix), chunk)


def finish_install(db: Any, sync: bool, chunk: int = INSTALL_CHUNK) -> bool:
    """Complete a snapshot install whose commit batch was written.

    Idempotent and resumable: the ``install`` marker records the phase.
    CLEAR deletes the whole state-machine area (safe to redo: nothing
    was moved yet); MOVE moves staged keys into place, each chunk putting
    the live keys and deleting their staged copies in one batch, so a
    redo moves only what is left. Returns False if there was nothing to do.
    """
    marker = db.get(INSTALL_KEY)
    if marker is None:
        return False
    if msgpack.unpackb(marker) == INSTALL_CLEAR:
        _delete_prefix(db, SM_PREFIX, chunk)
        db.put(INSTALL_KEY, pack(INSTALL_MOVE))
    n = len(STAGING_PREFIX)
    batch = db.write_batch()
    count = 0
    for key, value in db.iterator(prefix=STAGING_PREFIX):
        batch.put(key[n:], value)
        batch.delete(key)
        count += 1
        if count % chunk == 0:
            batch.write()
            batch = db.write_batch()
    if count % chunk:
        batch.write()
    db.delete(INSTALL_KEY, sync=sync)
    return True


def _error_text(e: BaseException) -> str:
    arg = e.args[0] if e.args else e
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


class LevelDBStorage:
    """Raft log, raft state and the KV state machine of one node in one LevelDB.

    Build it with :meth:`open` (a directory) or :meth:`in_memory` (tests).
    All write methods return Deferreds that fire, in call order, once the
    write is done *and* the in-memory mirror reflects it. Programming
    errors (a gap in the log, a bad key) raise at call time, before
    anything is written. After any write fails, every later one fails
    with :class:`StorageFailed`: the node must stop.
    """

    def __init__(
        self,
        db: Any,
        *,
        reactor: IReactorFromThreads | None = None,
        synchronous: bool = False,
        fsync: FsyncPolicy = "always",
        conf: ConfState | None = None,
        path: str | None = None,
        slow_write_seconds: float = 0.5,
        log_cache_bytes: int = LOG_CACHE_BYTES,
        log_cache_entries: int = LOG_CACHE_ENTRIES,
    ) -> None:
        """Take over an open ``plyvel.DB`` (or MemoryDB); recovers it.

        ``conf`` is the initial membership, used only when the database is
        new (then :attr:`is_new` is True). At most ``log_cache_bytes`` /
        ``log_cache_entries`` of recent log entries are kept in memory.
        """
        self.path = path if path is not None else "<memory>"
        self._db = db
        self._cache = EntryCache(log_cache_bytes, log_cache_entries)
        self._broken: Failure | None = None
        self._closed = False
        self._overlay: dict[bytes, tuple[int, bytes | None]] = {}
        self._seq = 0
        self.install_chunk = INSTALL_CHUNK
        """Operations per batch when clearing or moving snapshot data."""
        self.is_new = self._recover(conf)
        self._writer = Writer(
            db,
            reactor,
            synchronous=synchronous,
            fsync=fsync,
            slow_write_seconds=slow_write_seconds,
        )
        self.reads = ReadPool(reactor, synchronous=synchronous)
        """Where blocking reads (scans, snapshot and migration chunks) run."""

    @classmethod
    def open(
        cls,
        path: str,
        *,
        reactor: IReactorFromThreads | None = None,
        synchronous: bool = False,
        fsync: FsyncPolicy = "always",
        conf: ConfState | None = None,
        cache_bytes: int = 64 << 20,
        slow_write_seconds: float = 0.5,
        log_cache_bytes: int = LOG_CACHE_BYTES,
        log_cache_entries: int = LOG_CACHE_ENTRIES,
        max_open_files: int = MAX_OPEN_FILES,
    ) -> LevelDBStorage:
        """Open (creating if needed) the database in directory ``path``.

        Blocks while LevelDB opens and the log is scanned (one pass, in
        bounded memory): call it at startup (``startService``), not while
        serving. Raises :class:`StorageLocked` if the directory is in use.
        ``cache_bytes`` is LevelDB's block cache, ``log_cache_*`` bound
        the cache of recent log entries. LevelDB memory-maps the table
        files it keeps open, so ``max_open_files`` bounds how much of the
        data files can show in the process's RSS (clean page-cache pages).
        """
        import plyvel

        os.makedirs(path, exist_ok=True)
        try:
            db = plyvel.DB(
                path,
                create_if_missing=True,
                lru_cache_size=cache_bytes,
                bloom_filter_bits=10,
                max_open_files=max_open_files,
            )
        except plyvel.IOError as e:
            text = _error_text(e)
            if "IO error: lock " in text:
                raise StorageLocked(path) from None
            raise StorageError(f"cannot open data directory {path}: {text}") from e
        except plyvel.Error as e:
            raise StorageCorrupt(f"cannot open data directory {path}: {_error_text(e)}") from e
        try:
            return cls(
                db,
                reactor=reactor,
                synchronous=synchronous,
                fsync=fsync,
                conf=conf,
                path=path,
                slow_write_seconds=slow_write_seconds,
                log_cache_bytes=log_cache_bytes,
                log_cache_entries=log_cache_entries,
            )
        except BaseException:
            db.close()
            raise

    @classmethod
    def in_memory(
        cls, conf: ConfState | None = None, db: MemoryDB | None = None, **kw: Any
    ) -> LevelDBStorage:
        """The same storage over a :class:`MemoryDB`, writing synchronously.

        Pass the ``db`` of a previous instance to simulate a restart; ``kw``
        go to the constructor (e.g. ``log_cache_entries``).
        """
        return cls(db if db is not None else MemoryDB(), synchronous=True, conf=conf, **kw)

    # -- recovery ----------------------------------------------------------------
    def _recover(self, conf: ConfState | None) -> bool:
        db = self._db
        version = db.get(VERSION_KEY)
        new = version is None
        if new:
            if next(db.iterator(include_value=False), None) is not None:
                raise StorageCorrupt(f"{self.path} holds a LevelDB that is not eraft-twisted's")
            c = conf or ConfState()
            batch = db.write_batch(sync=True)
            batch.put(VERSION_KEY, pack(LAYOUT_VERSION))
            batch.put(HARD_STATE_KEY, encode_hard_state(HardState()))
            batch.put(CONF_STATE_KEY, encode_conf_state(c))
            batch.put(SNAPSHOT_KEY, encode_snapshot_meta(SnapshotMeta(0, 0, c)))
            batch.put(APPLIED_KEY, encode_applied(0, 0))
            batch.put(log_key(0), encode_entry(Entry(0, 0)))
            batch.write()
        elif msgpack.unpackb(version) != LAYOUT_VERSION:
            raise StorageCorrupt(f"{self.path}: unsupported layout version {version!r}")
        finish_install(db, sync=True)
        # Leftovers of a snapshot whose transfer was interrupted.
        _delete_prefix(db, STAGING_PREFIX)

        def need(key: bytes) -> bytes:
            value = db.get(key)
            if value is None:
                raise StorageCorrupt(f"{self.path}: missing {key!r}")
            return bytes(value)

        hs = decode_hard_state(need(HARD_STATE_KEY))
        cs = decode_conf_state(need(CONF_STATE_KEY))
        meta = decode_snapshot_meta(need(SNAPSHOT_KEY))
        applied = decode_applied(need(APPLIED_KEY))
        shape: LogShape | None = None
        # Seek to the first live entry: iterating from the prefix would read
        # every compacted entry LevelDB has not yet dropped from its files.
        hint = db.get(LOG_START_KEY)
        start = LOG_PREFIX if hint is None else log_key(msgpack.unpackb(hint))
        # One pass over the log: terms and sizes into the shape, the newest
        # entries into the cache (which evicts as it goes); nothing else kept.
        for key, value in db.iterator(start=start, stop=prefix_stop(LOG_PREFIX)):
            e = decode_entry(log_index(key), value)
            if shape is None:
                if hint is not None and key != start:
                    raise StorageCorrupt(f"{self.path}: raft log does not start at {start!r}")
                shape = LogShape(hs, cs, meta, e)
                continue
            if e.index != shape.last_index() + 1:
                raise StorageCorrupt(
                    f"{self.path}: raft log jumps from {shape.last_index()} to {e.index}"
                )
            shape.push(e)
            self._cache.append((e,))
        if shape is None:
            raise StorageCorrupt(f"{self.path}: raft log has no first entry")
        self._mem = shape
        self._pending = shape.copy()
        self._applied = applied
        self._p_applied = applied
        return new

    # -- the raft Storage protocol ----------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and membership persisted last."""
        return self._mem.hard_state, self._mem.conf

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in ``[lo, hi)``; at least one if any, at most ``max_bytes``.

        Recent entries come from the cache; older ones are point reads of
        LevelDB on the calling (reactor) thread. That is acceptable because
        they are few and bounded: the core always passes ``max_bytes``
        (one message's worth for a follower, one Ready's worth of committed
        entries to apply), the reads stop as soon as it is reached, and a
        recently written block is usually in the OS or LevelDB cache.
        """
        self._mem.check_range(lo, hi)
        return read_entries(self._db, self._cache, lo, hi, max_bytes)

    def conf_entries(self, lo: int, hi: int) -> list[Entry]:
        """The membership-change entries in ``[lo, hi)`` (read at start)."""
        return [
            read_entries(self._db, self._cache, i, i + 1)[0]
            for i in self._mem.conf_indexes_in(lo, hi)
        ]

    def log_bytes(self, lo: int, hi: int) -> int:
        """Total ``Entry.size()`` of the entries in ``[lo, hi)`` still in the
        log, including writes not yet completed (cheap: no disk read)."""
        return self._pending.log_bytes(lo, hi)

    @property
    def log_cache(self) -> EntryCache:
        """The cache of recent entries (its ``bytes`` and length show its use)."""
        return self._cache

    def term(self, index: int) -> int:
        """Term of the entry at ``index`` (also valid for the compaction point)."""
        return self._mem.term(index)

    def first_index(self) -> int:
        """Index of the first entry still in the log."""
        return self._mem.first_index()

    def last_index(self) -> int:
        """Index of the last entry persisted."""
        return self._mem.last_index()

    def snapshot(self) -> Snapshot:
        """The last snapshot's metadata; its payload is the DB itself, ``data`` is empty."""
        return self._mem.snap

    # -- state -------------------------------------------------------------------
    @property
    def hard_state(self) -> HardState:
        """The hard state persisted last."""
        return self._mem.hard_state

    @property
    def conf_state(self) -> ConfState:
        """Membership at the applied index."""
        return self._mem.conf

    def applied_index(self) -> int:
        """Index of the last entry whose effects are written (pass it as ``Config.applied``)."""
        return self._applied[0]

    def applied_term(self) -> int:
        """Term of the entry at :meth:`applied_index`."""
        return self._applied[1]

    @property
    def synchronous(self) -> bool:
        """True when writes happen inline (tests); Deferreds then fire at once."""
        return self._writer.synchronous

    def pending_overlay(self) -> dict[bytes, bytes | None]:
        """State-machine changes submitted by :meth:`apply_ops` but not yet written.

        ``{db key: value or None for a delete}``, a copy. Combined with a
        :meth:`db_snapshot` taken at the same moment (same reactor turn),
        it is the whole applied state.
        """
        return {key: value for key, (_, value) in self._overlay.items()}

    @property
    def writer(self) -> Writer:
        """The writer thread (its ``stats`` show how well commits group)."""
        return self._writer

    # -- writes ------------------------------------------------------------------
    def _submit(self, ops: Sequence[Op], sync: bool) -> Deferred[None]:
        if self._broken is not None:
            return fail(StorageFailed(f"storage of {self.path} failed earlier"))
        d = self._writer.submit(ops, sync)
        d.addErrback(self._failed)
        return d

    def _job(self, fn: Callable[[Any], T]) -> Deferred[T]:
        if self._broken is not None:
            return fail(StorageFailed(f"storage of {self.path} failed earlier"))
        d = self._writer.run_job(fn)
        d.addErrback(self._failed)
        return d

    def _failed(self, failure: Failure) -> Failure:
        if self._broken is None and not self._closed:
            self._broken = failure
        return failure

    def _then(self, d: Deferred[Any], update: Callable[[], T]) -> Deferred[T]:
        """Run ``update`` (a mirror update) when ``d`` succeeds, unless storage broke."""

        def done(_: object) -> T:
            if self._broken is not None:
                raise StorageFailed(f"storage of {self.path} failed earlier")
            return update()

        return d.addCallback(done)

    def persist(
        self,
        entries: Sequence[Entry] = (),
        hard_state: HardState | None = None,
        sync: bool = True,
    ) -> Deferred[None]:
        """Append ``entries`` and set ``hard_state`` in one atomic batch.

        Same semantics as ``MemoryStorage.append`` + ``set_hard_state``: a
        conflicting suffix is truncated (and its stale keys deleted on
        disk), entries below the first index are ignored, a gap raises
        ValueError. Pass ``sync=Ready.must_sync``. When the Deferred fires
        the write is durable (if synced) and the reads show it.
        """
        p = self._pending
        ops: list[Op] = []
        old_last = p.last_index()
        kept = p.append(entries)
        for e in kept:
            ops.append((log_key(e.index), encode_entry(e)))
        for i in range(p.last_index() + 1, old_last + 1):
            ops.append((log_key(i), None))
        if hard_state is not None:
            p.set_hard_state(hard_state)
            ops.append((HARD_STATE_KEY, encode_hard_state(hard_state)))
        mem = self._mem

        def update() -> None:
            if kept:
                mem.append(kept)
                self._cache.append(kept)
            if hard_state is not None:
                mem.set_hard_state(hard_state)

        return self._then(self._submit(ops, sync), update)

    def apply_ops(
        self,
        kv_ops: Iterable[Op],
        applied_index: int,
        conf_state: ConfState | None = None,
        *,
        applied_term: int | None = None,
        sync: bool = False,
    ) -> Deferred[None]:
        """Write state-machine changes and the new applied index in one batch.

        ``kv_ops`` are ``(db_key, value)`` puts or ``(db_key, None)``
        deletes of state-machine keys (``layout.data_key(user_key)`` or
        ``layout.sm_meta_key(name)``). ``conf_state`` is the membership
        after a conf change entry. The term of ``applied_index`` is taken
        from the log unless given. No sync by default: the log is durable,
        a lost apply is replayed, and the applied index goes with it.

        :meth:`get` sees the new values at once; ``scan``, ``db_snapshot``
        and :meth:`applied_index` once the Deferred has fired.
        """
        ops = list(kv_ops)
        for key, _ in ops:
            if key[:1] != SM_PREFIX:
                raise ValueError(f"apply_ops may only write state-machine keys, not {key!r}")
        if applied_index < self._p_applied[0]:
            raise ValueError(
                f"applied index going back from {self._p_applied[0]} to {applied_index}"
            )
        term = self._pending.term(applied_index) if applied_term is None else applied_term
        self._seq += 1
        seq = self._seq
        overlay = self._overlay
        for key, value in ops:
            overlay[key] = (seq, value)
        data_ops = len(ops)
        ops.append((APPLIED_KEY, encode_applied(applied_index, term)))
        if conf_state is not None:
            self._pending.set_conf_state(conf_state)
            ops.append((CONF_STATE_KEY, encode_conf_state(conf_state)))
        self._p_applied = (applied_index, term)

        def forget(result: object) -> object:
            for key, _ in ops[:data_ops]:
                cur = overlay.get(key)
                if cur is not None and cur[0] == seq:
                    del overlay[key]
            return result

        def update() -> None:
            self._applied = (applied_index, term)
            if conf_state is not None:
                self._mem.set_conf_state(conf_state)

        d = self._submit(ops, sync)
        d.addBoth(forget)
        return self._then(d, update)

    def create_snapshot(self, index: int, conf: ConfState | None = None) -> Deferred[Snapshot]:
        """Record that the state machine at applied ``index`` is the snapshot.

        Only metadata is written (the payload is the DB's state-machine
        area). ``conf`` defaults to the current membership; ``index`` should
        not exceed :meth:`applied_index`. Like MemoryStorage: an index not
        above the current snapshot's is ignored, one past the log raises
        UnavailableError. Follow with :meth:`compact` to drop the log.
        """
        p = self._pending
        if index <= p.snap.meta.index:
            return succeed(p.snap)
        snap = p.create_snapshot(index, conf if conf is not None else p.conf)
        ops: list[Op] = [(SNAPSHOT_KEY, encode_snapshot_meta(snap.meta))]

        def update() -> Snapshot:
            self._mem.snap = snap
            return snap

        return self._then(self._submit(ops, False), update)

    def compact(self, index: int) -> Deferred[None]:
        """Drop log entries up to and including ``index`` (disk and mirror).

        Entry ``index`` becomes the dummy first entry. Like MemoryStorage: no
        effect at or below the current first index - 1, UnavailableError
        past the last index.
        """
        p = self._pending
        offset = p.offset
        if index <= offset:
            return succeed(None)
        term = p.term(index)
        p.compact(index)
        ops: list[Op] = [(log_key(i), None) for i in range(offset, index)]
        ops.append((log_key(index), encode_entry(Entry(term, index))))
        ops.append((LOG_START_KEY, pack(index)))

        def update() -> None:
            self._mem.compact(index)
            self._cache.compact(index)

        return self._then(self._submit(ops, False), update)

    def clear_data(self, slot_lo: int | None = None, slot_hi: int | None = None) -> Deferred[int]:
        """Delete every user key (FLUSHALL), or those of slots lo..hi, in the
        writer thread and in bounded batches; ordered with every other write.
        Fires with the count."""
        chunk = self.install_chunk
        if slot_lo is None or slot_hi is None:
            return self._job(lambda db: _delete_prefix(db, DATA_PREFIX, chunk))
        start, stop = data_range(slot_lo, slot_hi)
        return self._job(lambda db: _delete_range(db, start, stop, chunk))

    def barrier(self, sync: bool = True) -> Deferred[None]:
        """Fires once every earlier write is done (and, with ``sync``, durable)."""
        return self._submit([], sync)

    # -- receiving a snapshot ------------------------------------------------------
    def begin_snapshot_install(self) -> Deferred[None]:
        """Empty the staging area before receiving a snapshot's items."""
        chunk = self.install_chunk
        return self._then(
            self._job(lambda db: _delete_prefix(db, STAGING_PREFIX, chunk)), lambda: None
        )

    def stage_snapshot_items(self, items: Iterable[tuple[bytes, bytes]]) -> Deferred[None]:
        """Store received ``(state-machine key, value)`` items in the staging area.

        Call once per received chunk, waiting for each Deferred to bound
        memory; nothing live changes until :meth:`install_staged_snapshot`.
        """
        ops: list[Op] = []
        for key, value in items:
            if key[:1] != SM_PREFIX:
                raise ValueError(f"snapshot items must be state-machine keys, not {key!r}")
            ops.append((STAGING_PREFIX + key, value))
        return self._submit(ops, False)

    def install_staged_snapshot(self, meta: SnapshotMeta) -> Deferred[bool]:
        """Atomically make the staged items the state machine at ``meta``.

        One synced batch is the commit point: it writes the snapshot
        metadata, membership, applied index (``meta.index``), drops the
        whole log (leaving the dummy entry at ``meta.index``), raises the
        hard state's commit to ``meta.index`` if lower, and sets an
        ``install`` marker. Then the live state-machine area is cleared and
        the staged items moved in, in bounded batches; if the process dies
        meanwhile, :meth:`open` finishes the job before loading. So a crash
        leaves either the old node or the new one. Fires with False (and
        changes nothing) if ``meta.index`` is not above the current
        snapshot's, like MemoryStorage. Reads of the KV data are undefined
        until the Deferred fires.
        """
        p = self._pending
        if meta.index <= p.snap.meta.index:
            return succeed(False)
        hs = p.hard_state
        if hs.commit < meta.index:
            hs = replace(hs, commit=meta.index)
        ops: list[Op] = [(INSTALL_KEY, pack(INSTALL_CLEAR))]
        ops.extend((log_key(i), None) for i in range(p.offset, p.last_index() + 1))
        ops.append((log_key(meta.index), encode_entry(Entry(meta.term, meta.index))))
        ops.append((LOG_START_KEY, pack(meta.index)))
        ops.append((SNAPSHOT_KEY, encode_snapshot_meta(meta)))
        ops.append((CONF_STATE_KEY, encode_conf_state(meta.conf)))
        ops.append((APPLIED_KEY, encode_applied(meta.index, meta.term)))
        ops.append((HARD_STATE_KEY, encode_hard_state(hs)))
        snap = Snapshot(meta)
        p.apply_snapshot(snap)
        p.set_hard_state(hs)
        self._p_applied = (meta.index, meta.term)
        sync = self._writer.will_sync(True)
        chunk = self.install_chunk

        def job(db: Any) -> None:
            batch = db.write_batch(sync=sync)
            for key, value in ops:
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            batch.write()
            finish_install(db, sync, chunk)

        def update() -> bool:
            self._mem.apply_snapshot(snap)
            self._cache.clear()
            self._mem.set_hard_state(hs)
            self._applied = (meta.index, meta.term)
            return True

        return self._then(self._job(job), update)

    def apply_snapshot(
        self,
        meta: SnapshotMeta,
        items: Iterable[tuple[bytes, bytes]],
        *,
        chunk: int | None = None,
    ) -> Deferred[bool]:
        """Install a whole received snapshot: stage ``items`` chunk by chunk, then switch.

        ``items`` are ``(state-machine key, value)`` pairs, e.g. from
        :meth:`snapshot_items` on the sender. See :meth:`install_staged_snapshot`.
        """
        if meta.index <= self._pending.snap.meta.index:
            return succeed(False)
        return self._apply_snapshot(meta, items, chunk or self.install_chunk)

    def install_snapshot(self, snap: Snapshot) -> Deferred[bool]:
        """Install the snapshot of a ``Ready``.

        If ``snap.data`` is non-empty it is the whole payload, as made by
        ``layout.encode_items`` (an inline, small snapshot); if empty, the
        items were already streamed in with :meth:`begin_snapshot_install`
        and :meth:`stage_snapshot_items`, and only the switch is left.
        """
        if snap.data:
            return self.apply_snapshot(snap.meta, decode_items(snap.data))
        return self.install_staged_snapshot(snap.meta)

    @inlineCallbacks
    def _apply_snapshot(
        self, meta: SnapshotMeta, items: Iterable[tuple[bytes, bytes]], chunk: int
    ) -> Generator[Deferred[Any], Any, bool]:
        yield self.begin_snapshot_install()
        it = iter(items)
        while True:
            part = list(islice(it, chunk))
            if not part:
                break
            yield self.stage_snapshot_items(part)
        installed = yield self.install_staged_snapshot(meta)
        return bool(installed)

    # -- reading the state machine ---------------------------------------------------
    def get(self, key: bytes, snapshot: Any = None) -> bytes | None:
        """The value of user key ``key``, or None.

        Without ``snapshot``, includes every :meth:`apply_ops` already
        called, even if not yet written. A LevelDB point read on the
        calling thread (usually served from cache).
        """
        return self.get_raw(data_key(key), snapshot)

    def get_raw(self, db_key: bytes, snapshot: Any = None) -> bytes | None:
        """Like :meth:`get` for any DB key (e.g. ``layout.sm_meta_key``)."""
        if snapshot is not None:
            value = snapshot.get(db_key)
        else:
            hit = self._overlay.get(db_key)
            if hit is not None:
                return hit[1]
            value = self._db.get(db_key)
        return None if value is None else bytes(value)

    def scan(
        self,
        slot_lo: int,
        slot_hi: int,
        start_after: bytes | None = None,
        count: int | None = None,
        snapshot: Any = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(user key, value)`` pairs of slots ``slot_lo..slot_hi`` (inclusive).

        Ordered by (slot, key); resumes after user key ``start_after``;
        at most ``count`` pairs. Reads written data only (a LevelDB
        iterator: a consistent view as of the first item), from
        ``snapshot`` if given.
        """
        start, stop = data_range(slot_lo, slot_hi)
        include_start = True
        if start_after is not None:
            after = data_key(start_after)
            if after >= start:
                start, include_start = after, False
        if start >= stop:
            return iter(())
        source = snapshot if snapshot is not None else self._db
        pairs = source.iterator(start=start, stop=stop, include_start=include_start)
        out = ((user_key(k), bytes(v)) for k, v in pairs)
        return out if count is None else islice(out, count)

    def scan_raw(
        self, prefix: bytes, start_after: bytes | None = None, snapshot: Any = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(db key, value)`` pairs under ``prefix``, after ``start_after`` if given."""
        source = snapshot if snapshot is not None else self._db
        if start_after is None:
            return iter(source.iterator(prefix=prefix))
        return iter(
            source.iterator(start=start_after, stop=prefix_stop(prefix), include_start=False)
        )

    def db_snapshot(self) -> Any:
        """A LevelDB snapshot: a frozen, consistent view of everything written.

        Cheap (no copy). Pass it to :meth:`get`/:meth:`scan`, or to
        :meth:`snapshot_meta_at`/:meth:`snapshot_items` to ship a raft
        snapshot; ``.close()`` it when done.
        """
        return self._db.snapshot()

    def snapshot_meta_at(self, snapshot: Any) -> SnapshotMeta:
        """The raft position of the state machine in a :meth:`db_snapshot`.

        Read from the snapshot itself (applied index, its term, membership),
        so it matches :meth:`snapshot_items` of the same snapshot exactly.
        """
        index, term = decode_applied(snapshot.get(APPLIED_KEY))
        return SnapshotMeta(index, term, decode_conf_state(snapshot.get(CONF_STATE_KEY)))

    def outgoing_snapshot(self) -> tuple[SnapshotMeta, Any]:
        """A :meth:`db_snapshot` and its exact raft position, for shipping to a follower.

        Ship *this* meta with the items, not ``snapshot().meta``: the live
        state machine is usually ahead of the last recorded snapshot, and a
        follower installing newer data under an older index would apply
        the entries in between twice.
        """
        snap = self._db.snapshot()
        return self.snapshot_meta_at(snap), snap

    def snapshot_items(self, snapshot: Any) -> Iterator[tuple[bytes, bytes]]:
        """Every state-machine ``(db key, value)`` in a :meth:`db_snapshot`."""
        return iter(snapshot.iterator(prefix=SM_PREFIX))

    # -- shutdown ------------------------------------------------------------------------
    def close(self) -> Deferred[None]:
        """Finish queued writes, stop the writer thread, close the DB."""
        if self._closed:
            return succeed(None)
        self._closed = True

        def close_db(_: object) -> None:
            self.reads.stop()
            self._db.close()

        return self._writer.stop().addCallback(close_db)

    def put_local(self, key: bytes, value: bytes) -> Deferred[None]:
        """Write (synced) a node-local ``M`` key no raft state uses, such as
        ``layout.IDENTITY_KEY``; read it with :meth:`get_raw`. Snapshots
        never carry it."""
        raft_keys = (HARD_STATE_KEY, CONF_STATE_KEY, SNAPSHOT_KEY, APPLIED_KEY)
        if key[:1] != VERSION_KEY[:1] or key in (
            *raft_keys,
            INSTALL_KEY,
            VERSION_KEY,
            LOG_START_KEY,
        ):
            raise ValueError(f"put_local may not write {key!r}")
        return self._submit([(key, value)], True)


if TYPE_CHECKING:

    def _is_raft_storage(s: LevelDBStorage) -> Storage:
        return s
