"""Taking in a snapshot from the leader: staging its items, then switching to it.

The items are streamed into a staging area (``layout.STAGING_PREFIX``);
nothing live changes until :meth:`SnapshotInstall.install_staged_snapshot`
writes one synced commit batch, after which :func:`finish_install` clears
the live state machine and moves the staged items in. A crash at any point
leaves either the old node or the new one: opening the storage finishes
an install whose commit batch was written, and drops staged leftovers.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import replace
from itertools import islice

import msgpack
from twisted.internet.defer import Deferred, inlineCallbacks, succeed

from eraft_twisted.raft.types import Entry, Snapshot, SnapshotMeta

from .base import StorageBase
from .db import DB, WriteBatch, delete_prefix, in_batches
from .layout import (
    APPLIED_KEY,
    CONF_STATE_KEY,
    HARD_STATE_KEY,
    INSTALL_KEY,
    LOG_START_KEY,
    SM_PREFIX,
    SNAPSHOT_KEY,
    STAGING_PREFIX,
    decode_items,
    encode_applied,
    encode_conf_state,
    encode_entry,
    encode_hard_state,
    encode_snapshot_meta,
    log_key,
    pack,
)
from .writer import Op

INSTALL_CLEAR = 0
INSTALL_MOVE = 1
INSTALL_CHUNK = 8192
"""Operations per batch while moving a received snapshot into place."""


def finish_install(db: DB, sync: bool, chunk: int = INSTALL_CHUNK) -> bool:
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
        delete_prefix(db, SM_PREFIX, chunk)
        db.put(INSTALL_KEY, pack(INSTALL_MOVE))
    n = len(STAGING_PREFIX)

    def move(batch: WriteBatch, item: tuple[bytes, bytes]) -> None:
        batch.put(item[0][n:], item[1])
        batch.delete(item[0])

    in_batches(db, db.iterator(prefix=STAGING_PREFIX), chunk, move)
    db.delete(INSTALL_KEY, sync=sync)
    return True


def _write_then_finish(ops: list[Op], sync: bool, chunk: int) -> Callable[[DB], None]:
    """The writer job of an install: its commit batch, then the move."""

    def job(db: DB) -> None:
        batch = db.write_batch(sync=sync)
        for key, value in ops:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.write()
        finish_install(db, sync, chunk)

    return job


class SnapshotInstall(StorageBase):
    """The part of LevelDBStorage that takes in a snapshot."""

    def begin_snapshot_install(self) -> Deferred[None]:
        """Empty the staging area before receiving a snapshot's items."""
        chunk = self.install_chunk
        return self._then(
            self._job(lambda db: delete_prefix(db, STAGING_PREFIX, chunk)), lambda: None
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
        job = _write_then_finish(ops, self._writer.will_sync(True), self.install_chunk)

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
    ) -> Generator[Deferred[None] | Deferred[bool], object, bool]:
        yield self.begin_snapshot_install()
        it = iter(items)
        while True:
            part = list(islice(it, chunk))
            if not part:
                break
            yield self.stage_snapshot_items(part)
        installed = yield self.install_staged_snapshot(meta)
        return bool(installed)
