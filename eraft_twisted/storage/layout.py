"""Key layout of the one LevelDB a node keeps, and the value encodings.

Every key starts with a one-byte area tag, so each area is one contiguous
key range and LevelDB's ordering does the indexing::

    L <index:8 BE>                raft log entry (the first one is the dummy
                                  entry holding the compaction point's
                                  index and term, as ``ents[0]`` in
                                  MemoryStorage)
    M hard                        HardState
    M conf                        ConfState at the applied index
    M snap                        SnapshotMeta of the last snapshot
    M applied                     (applied index, its term)
    M install                     present only while a received snapshot
                                  is being moved into place
    M version                     layout version
    M logstart                    index of the log's first (dummy) entry, so
                                  a restart seeks past the deleted ones
    M ident                       this node's group and cluster ids
                                  (node-local: never in a snapshot)
    S c <slot:2 BE> <version:8 BE> <sub key>
                                  one row per field / member / element of
                                  a collection (hash, list, set, sorted
                                  set) whose metadata row holds ``version``
    S d <slot:2 BE> <user key>    KV data, ordered by (slot, key): a string's
                                  record or a collection's metadata row
    S g <slot:2 BE> <version:8 BE>
                                  a dead collection version whose rows are
                                  still to be removed (through the log)
    S m <anything>                other state-machine state (sessions, TTL
                                  index...), owned by the KV layer
    T S...                        staging copy of a snapshot being received

Everything under ``S`` is the state machine: it is what a snapshot holds,
and only :meth:`LevelDBStorage.apply_ops` writes it, together with the
applied index. Values are msgpack; a log entry's index lives in its key
only.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import cast

import msgpack

from eraft_twisted.hashslot import MAX_SLOT, key_hash_slot
from eraft_twisted.raft.types import ConfState, Entry, EntryType, HardState, SnapshotMeta

LAYOUT_VERSION = 1

LOG_PREFIX = b"L"
META_PREFIX = b"M"
SM_PREFIX = b"S"
DATA_PREFIX = b"Sd"
ROWS_PREFIX = b"Sc"
GARBAGE_PREFIX = b"Sg"
SLOT_AREAS = (ROWS_PREFIX, DATA_PREFIX, GARBAGE_PREFIX)
"""The state-machine areas ordered by hash slot (in key order): what a slot
range's FLUSHALL clears and its migration copies."""
SM_META_PREFIX = b"Sm"
STAGING_PREFIX = b"T"

HARD_STATE_KEY = b"Mhard"
CONF_STATE_KEY = b"Mconf"
SNAPSHOT_KEY = b"Msnap"
APPLIED_KEY = b"Mapplied"
INSTALL_KEY = b"Minstall"
VERSION_KEY = b"Mversion"
LOG_START_KEY = b"Mlogstart"
IDENTITY_KEY = b"Mident"

_INDEX = struct.Struct(">Q")
_SLOT = struct.Struct(">H")
_DATA_HEADER = len(DATA_PREFIX) + _SLOT.size
_VERSION = struct.Struct(">Q")


def pack(obj: object) -> bytes:
    """msgpack-encode ``obj`` (bytes stay bytes)."""
    return cast(bytes, msgpack.packb(obj))


def prefix_stop(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix``."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        raise ValueError("prefix has no upper bound")
    p[-1] += 1
    return bytes(p)


# -- raft log -----------------------------------------------------------------


def log_key(index: int) -> bytes:
    """Key of the log entry at ``index``; keys sort in index order."""
    return LOG_PREFIX + _INDEX.pack(index)


def log_index(key: bytes) -> int:
    """Inverse of :func:`log_key`."""
    return int(_INDEX.unpack_from(key, len(LOG_PREFIX))[0])


def encode_entry(entry: Entry) -> bytes:
    """The value stored for ``entry`` (its index is in the key)."""
    return pack((entry.term, int(entry.type), entry.data))


def decode_entry(index: int, value: bytes) -> Entry:
    """Inverse of :func:`encode_entry`."""
    term, typ, data = msgpack.unpackb(value)
    return Entry(term, index, EntryType(typ), data)


# -- raft state ---------------------------------------------------------------


def encode_hard_state(hs: HardState) -> bytes:
    """msgpack ``[term, vote, commit]``."""
    return pack((hs.term, hs.vote, hs.commit))


def decode_hard_state(value: bytes) -> HardState:
    """Inverse of :func:`encode_hard_state`."""
    term, vote, commit = msgpack.unpackb(value)
    return HardState(term, vote, commit)


def encode_conf_state(conf: ConfState) -> bytes:
    """msgpack ``[voters, learners]``."""
    return pack((list(conf.voters), list(conf.learners)))


def decode_conf_state(value: bytes) -> ConfState:
    """Inverse of :func:`encode_conf_state`."""
    voters, learners = msgpack.unpackb(value)
    return ConfState(tuple(voters), tuple(learners))


def encode_snapshot_meta(meta: SnapshotMeta) -> bytes:
    """msgpack ``[index, term, voters, learners]``."""
    return pack((meta.index, meta.term, list(meta.conf.voters), list(meta.conf.learners)))


def decode_snapshot_meta(value: bytes) -> SnapshotMeta:
    """Inverse of :func:`encode_snapshot_meta`."""
    index, term, voters, learners = msgpack.unpackb(value)
    return SnapshotMeta(index, term, ConfState(tuple(voters), tuple(learners)))


def encode_applied(index: int, term: int) -> bytes:
    """msgpack ``[applied index, term of that entry]``."""
    return pack((index, term))


def decode_applied(value: bytes) -> tuple[int, int]:
    """Inverse of :func:`encode_applied`."""
    index, term = msgpack.unpackb(value)
    return int(index), int(term)


# -- state machine data -------------------------------------------------------


def data_key(user_key: bytes) -> bytes:
    """The DB key holding ``user_key``: prefix, 2-byte BE hash slot, key."""
    return DATA_PREFIX + _SLOT.pack(key_hash_slot(user_key)) + user_key


def data_range(slot_lo: int, slot_hi: int) -> tuple[bytes, bytes]:
    """``(start, stop)`` DB keys covering slots ``slot_lo..slot_hi``, both inclusive.

    Inclusive like Redis's ``0-16383``; ``start`` is inclusive and ``stop``
    exclusive, as plyvel's ``iterator(start=, stop=)`` expects.
    """
    if not 0 <= slot_lo <= slot_hi <= MAX_SLOT:
        raise ValueError(f"bad slot range {slot_lo}-{slot_hi}")
    return DATA_PREFIX + _SLOT.pack(slot_lo), DATA_PREFIX + _SLOT.pack(slot_hi + 1)


def area_range(area: bytes, slot_lo: int, slot_hi: int) -> tuple[bytes, bytes]:
    """:func:`data_range` for any of :data:`SLOT_AREAS`."""
    if not 0 <= slot_lo <= slot_hi <= MAX_SLOT:
        raise ValueError(f"bad slot range {slot_lo}-{slot_hi}")
    return area + _SLOT.pack(slot_lo), area + _SLOT.pack(slot_hi + 1)


def rows_prefix(slot: int, version: int) -> bytes:
    """The prefix of every row of collection ``version`` (stored in ``slot``)."""
    return ROWS_PREFIX + _SLOT.pack(slot) + _VERSION.pack(version)


def row_key(slot: int, version: int, sub: bytes) -> bytes:
    """The DB key of one field / member / element of a collection."""
    return ROWS_PREFIX + _SLOT.pack(slot) + _VERSION.pack(version) + sub


ROW_HEADER = len(ROWS_PREFIX) + _SLOT.size + _VERSION.size
"""Bytes before a row's sub key."""


def garbage_key(slot: int, version: int) -> bytes:
    """The marker of a dead collection version whose rows are to be removed."""
    return GARBAGE_PREFIX + _SLOT.pack(slot) + _VERSION.pack(version)


def garbage_of(db_key: bytes) -> tuple[int, int]:
    """``(slot, version)`` of a :func:`garbage_key`."""
    return int(_SLOT.unpack_from(db_key, 2)[0]), int(_VERSION.unpack_from(db_key, 4)[0])


def user_key(db_key: bytes) -> bytes:
    """Inverse of :func:`data_key`."""
    return db_key[_DATA_HEADER:]


def slot_of(db_key: bytes) -> int:
    """The hash slot recorded in a key of any of :data:`SLOT_AREAS`."""
    return int(_SLOT.unpack_from(db_key, len(DATA_PREFIX))[0])


def sm_meta_key(name: bytes) -> bytes:
    """A key for the KV layer's own replicated state (included in snapshots)."""
    return SM_META_PREFIX + name


def is_state_machine_key(db_key: bytes) -> bool:
    """True for keys the state machine owns (what apply_ops and snapshots carry)."""
    return db_key[:1] == SM_PREFIX


def encode_items(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A snapshot payload (or one chunk of it): msgpack list of ``[key, value]``."""
    return pack([(k, v) for k, v in items])


def decode_items(data: bytes) -> list[tuple[bytes, bytes]]:
    """Inverse of :func:`encode_items`."""
    return [(bytes(k), bytes(v)) for k, v in msgpack.unpackb(data)]


def staging_key(sm_key: bytes) -> bytes:
    """Where a received snapshot's ``sm_key`` waits before the switch."""
    return STAGING_PREFIX + sm_key
