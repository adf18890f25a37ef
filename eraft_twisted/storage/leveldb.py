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

Opening is in :mod:`.recovery`, taking in a snapshot in :mod:`.install`,
reading the state machine in :mod:`.smreads`; the state they share and
the write path are in :mod:`.base`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypedDict, Unpack

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorFromThreads

from eraft_twisted.raft.storage import Storage
from eraft_twisted.raft.types import ConfState, Entry, HardState, Snapshot

from .db import DB, delete_prefix, delete_range
from .errors import StorageCorrupt, StorageError, StorageFailed, StorageLocked
from .install import INSTALL_CHUNK, SnapshotInstall
from .layout import (
    APPLIED_KEY,
    CONF_STATE_KEY,
    HARD_STATE_KEY,
    INSTALL_KEY,
    LOG_START_KEY,
    ROW_HEADER,
    ROWS_PREFIX,
    SLOT_AREAS,
    SM_PREFIX,
    SNAPSHOT_KEY,
    VERSION_KEY,
    area_range,
    encode_applied,
    encode_conf_state,
    encode_entry,
    encode_hard_state,
    encode_snapshot_meta,
    log_key,
    pack,
)
from .memorydb import MemoryDB
from .raftlog import LOG_CACHE_BYTES, LOG_CACHE_ENTRIES, EntryCache, read_entries
from .readpool import ReadPool
from .recovery import open_leveldb, recover
from .smreads import StateMachineReads
from .writer import FsyncPolicy, Op, Writer

__all__ = [
    "LevelDBStorage",
    "StorageCorrupt",
    "StorageError",
    "StorageFailed",
    "StorageLocked",
]

MAX_OPEN_FILES = 64
"""LevelDB's table cache: at most ~54 tables (~2 MiB each) mapped at once;
LevelDB's own default of 1000 lets ~2 GiB of data files count in RSS."""


class _Options(TypedDict, total=False):
    """Constructor options :meth:`LevelDBStorage.in_memory` passes on."""

    reactor: IReactorFromThreads | None
    fsync: FsyncPolicy
    path: str | None
    slow_write_seconds: float
    log_cache_bytes: int
    log_cache_entries: int


class LevelDBStorage(SnapshotInstall, StateMachineReads):
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
        db: DB,
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
        self._broken = None
        self._closed = False
        self._overlay = {}
        self._overlay_rows = {}
        self._seq = 0
        self.install_chunk = INSTALL_CHUNK
        found = recover(db, self.path, conf, self._cache)
        self.is_new = found.is_new
        self._mem = found.shape
        self._pending = found.shape.copy()
        self._applied = found.applied
        self._p_applied = found.applied
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
        db = open_leveldb(path, cache_bytes, max_open_files)
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
        cls, conf: ConfState | None = None, db: MemoryDB | None = None, **kw: Unpack[_Options]
    ) -> LevelDBStorage:
        """The same storage over a :class:`MemoryDB`, writing synchronously.

        Pass the ``db`` of a previous instance to simulate a restart; ``kw``
        go to the constructor (e.g. ``log_cache_entries``).
        """
        return cls(db if db is not None else MemoryDB(), synchronous=True, conf=conf, **kw)

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

    @property
    def writer(self) -> Writer:
        """The writer thread (its ``stats`` show how well commits group)."""
        return self._writer

    # -- writes ------------------------------------------------------------------
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
        by_prefix = self._overlay_rows
        for key, value in ops:
            overlay[key] = (seq, value)
            if key[:2] == ROWS_PREFIX:
                by_prefix.setdefault(key[:ROW_HEADER], set()).add(key)
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
                    if key[:2] == ROWS_PREFIX:
                        rows = by_prefix.get(key[:ROW_HEADER])
                        if rows is not None:
                            rows.discard(key)
                            if not rows:
                                del by_prefix[key[:ROW_HEADER]]
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
            return self._job(lambda db: sum(delete_prefix(db, area, chunk) for area in SLOT_AREAS))
        lo, hi = slot_lo, slot_hi
        return self._job(
            lambda db: sum(
                delete_range(db, *area_range(area, lo, hi), chunk) for area in SLOT_AREAS
            )
        )

    def barrier(self, sync: bool = True) -> Deferred[None]:
        """Fires once every earlier write is done (and, with ``sync``, durable)."""
        return self._submit([], sync)

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
