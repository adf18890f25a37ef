"""Removing the rows of deleted collections, through the log.

Deleting or replacing a collection drops only its record and leaves a
garbage marker (``layout.garbage_key``); its rows stay until the leader
lists up to :data:`BATCH` of them (in the read pool, off the reactor) and
proposes their removal (``DROP_ROWS``), batch after batch, the last one
with the marker. Every replica removes the same rows, and a big DEL never
becomes one big entry or one long apply.
"""

from __future__ import annotations

from typing import cast

from twisted.internet import defer

from ..kv.statemachine import Op, encode_op
from ..kv.store import KVStore
from ..storage import layout
from ..storage.leveldb import LevelDBStorage
from .seams import GroupNode

BATCH = 1000
"""Rows removed per log entry."""


class GarbageCollector:
    """The leader's removal of dead collection rows, one batch per call."""

    def __init__(self, node: GroupNode, store: KVStore, storage: LevelDBStorage) -> None:
        self.node = node
        self.store = store
        self.storage = storage
        self._busy = False

    def pending(self) -> tuple[int, int] | None:
        """``(slot, version)`` of a dead collection version whose rows are
        still there, or None."""
        start = layout.GARBAGE_PREFIX
        for db_key, _ in self.store.iterate_rows(start, layout.prefix_stop(start)):
            return layout.garbage_of(db_key)
        return None

    def sweep(self, now_ms: int) -> defer.Deferred[int]:
        """On the leader: propose the removal of one batch of dead rows.
        Fires with the number of rows proposed (0: nothing to do)."""
        if self._busy or not self.node.is_leader:
            return defer.succeed(0)
        found = self.pending()
        if found is None:
            return defer.succeed(0)
        slot, version = found
        self._busy = True
        prefix = layout.rows_prefix(slot, version)

        def listed(_: object) -> defer.Deferred[list[bytes]]:
            def rows() -> list[bytes]:
                subs = []
                for db_key, _ in self.storage.scan_raw(prefix):
                    subs.append(db_key[layout.ROW_HEADER :])
                    if len(subs) > BATCH:
                        break
                return subs

            return self.storage.reads.run(rows)

        def propose(subs: list[bytes]) -> defer.Deferred[object]:
            done = len(subs) <= BATCH
            subs = subs[:BATCH]
            op = encode_op(Op.DROP_ROWS, now_ms, slot, version, subs, done)
            return self.node.propose(op).addCallback(lambda _: len(subs))

        def idle(result: object) -> object:
            self._busy = False
            return result

        # Every row of a dead version was written before it died: once
        # what is queued is written, the scan sees them all.
        d = self.storage.barrier(sync=False).addCallback(listed).addCallback(propose)
        return cast("defer.Deferred[int]", d.addBoth(idle))
