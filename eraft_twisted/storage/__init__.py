"""Persistence of a node: raft log, raft state and KV data in one LevelDB.

See :mod:`.layout` for the key layout, :mod:`.writer` for the group-commit
writer thread and :mod:`.leveldb` for :class:`LevelDBStorage`.
"""

from .leveldb import (
    LevelDBStorage,
    StorageCorrupt,
    StorageError,
    StorageFailed,
    StorageLocked,
)
from .writer import Writer, WriterStopped

__all__ = [
    "LevelDBStorage",
    "StorageCorrupt",
    "StorageError",
    "StorageFailed",
    "StorageLocked",
    "Writer",
    "WriterStopped",
]
