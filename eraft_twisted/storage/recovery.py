"""Opening a node's data directory: the LevelDB handle, then what it holds.

:func:`open_leveldb` opens (or creates) the database; :func:`recover`
checks its layout, initialises a new one, finishes a snapshot install a
crash interrupted, drops an interrupted transfer's staged items, and reads
the raft state and the log (one pass, in bounded memory) into a
:class:`~.raftlog.LogShape` and the entry cache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import msgpack

from eraft_twisted.raft.types import ConfState, Entry, HardState, SnapshotMeta

from .db import DB, delete_prefix, require
from .errors import StorageCorrupt, StorageError, StorageLocked
from .install import INSTALL_CHUNK, finish_install
from .layout import (
    APPLIED_KEY,
    CONF_STATE_KEY,
    HARD_STATE_KEY,
    LAYOUT_VERSION,
    LOG_PREFIX,
    LOG_START_KEY,
    SNAPSHOT_KEY,
    STAGING_PREFIX,
    VERSION_KEY,
    decode_applied,
    decode_conf_state,
    decode_entry,
    decode_hard_state,
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
)
from .raftlog import EntryCache, LogShape


def _error_text(e: BaseException) -> str:
    arg = e.args[0] if e.args else e
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def open_leveldb(path: str, cache_bytes: int, max_open_files: int) -> DB:
    """Open (creating if needed) the LevelDB in directory ``path``.

    Raises :class:`StorageLocked` if another process holds it,
    :class:`StorageCorrupt` if LevelDB cannot read it.
    """
    import plyvel

    os.makedirs(path, exist_ok=True)
    try:
        db: DB = plyvel.DB(
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
    return db


@dataclass
class Recovered:
    """What :func:`recover` found."""

    shape: LogShape
    applied: tuple[int, int]
    """Index and term of the last applied entry."""
    is_new: bool
    """The database was empty, and was initialised with the given membership."""


def recover(db: DB, path: str, conf: ConfState | None, cache: EntryCache) -> Recovered:
    """Bring ``db`` to a consistent state and read the raft state and log shape.

    The newest entries go into ``cache``. ``conf`` is the membership of a
    new database. Raises :class:`StorageCorrupt` if ``db`` is not a valid
    eraft-twisted database.
    """
    version = db.get(VERSION_KEY)
    new = version is None
    if new:
        if next(db.iterator(include_value=False), None) is not None:
            raise StorageCorrupt(f"{path} holds a LevelDB that is not eraft-twisted's")
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
        raise StorageCorrupt(f"{path}: unsupported layout version {version!r}")
    finish_install(db, sync=True)
    # Leftovers of a snapshot whose transfer was interrupted.
    delete_prefix(db, STAGING_PREFIX, INSTALL_CHUNK)

    hs = decode_hard_state(require(db, HARD_STATE_KEY, path))
    cs = decode_conf_state(require(db, CONF_STATE_KEY, path))
    meta = decode_snapshot_meta(require(db, SNAPSHOT_KEY, path))
    applied = decode_applied(require(db, APPLIED_KEY, path))
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
                raise StorageCorrupt(f"{path}: raft log does not start at {start!r}")
            shape = LogShape(hs, cs, meta, e)
            continue
        if e.index != shape.last_index() + 1:
            raise StorageCorrupt(f"{path}: raft log jumps from {shape.last_index()} to {e.index}")
        shape.push(e)
        cache.append((e,))
    if shape is None:
        raise StorageCorrupt(f"{path}: raft log has no first entry")
    return Recovered(shape, applied, new)
