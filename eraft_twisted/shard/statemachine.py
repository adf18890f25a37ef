"""The KV state machine of a group in a sharded cluster.

It applies the sharding operations (the next config, chunks of an incoming
copy, the end of a copy, the release of a handed-over range) besides the KV
ones, keeping :class:`ShardState` as replicated state: what a key's write is
checked against at apply time, so ownership and data change in one order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from ..kv.records import KeyType, record_rev, record_type, unpack_meta
from ..kv.statemachine import Applied, KVStateMachine, StateStore, Writes
from ..storage import layout
from .state import ShardState


class ShardedStateMachine(KVStateMachine):
    """:class:`KVStateMachine` plus slot ownership and the migration ops."""

    shards: ShardState

    def __init__(self, store: StateStore) -> None:
        super().__init__(store)
        self.shards = ShardState()

    def load_replicated(self) -> None:
        super().load_replicated()
        self.load_shards()

    def _save_shards(self) -> None:
        self.store.stage_meta(b"shards", msgpack.packb(self.shards.to_dict()))

    def load_shards(self) -> None:
        """Reload the sharding state from the replicated state."""
        for name, value in self.store.meta_items(b"shards"):
            if name == b"shards":
                self.shards = ShardState.from_dict(msgpack.unpackb(value, strict_map_key=False))
                return
        self.shards = ShardState()

    def _config(self, now: int, group: int, config: Mapping[str, Any]) -> Applied:
        if not self.shards.apply_config(group, config):
            return 0, []
        self._save_shards()
        return 1, []

    def _install(
        self, now: int, num: int, lo: int, hi: int, first: bool, items: list[bytes]
    ) -> Applied:
        # Written by earlier versions (still in their logs): no copy position.
        if not self.shards.chunk_allowed(num, lo, hi):
            return 0, []
        if first:
            # Whatever an older copy left here is replaced by this pull.
            self.store.clear_slots(lo, hi)
        writes: Writes = [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        return len(writes), writes

    def _install_at(
        self,
        now: int,
        num: int,
        lo: int,
        hi: int,
        after: bytes | None,
        items: list[bytes],
        source_time: int = 0,
    ) -> Applied:
        """A chunk of a copy: applies only if it starts where the replicated
        copy position is (None: the first chunk, which replaces whatever an
        older copy left in the range). Returns the number of keys, or -1 if
        the chunk does not fit (a deposed leader's, or a repeat).

        ``source_time`` is the source group's ``log_time`` when it read the
        chunk (after it froze the range): ours moves up to it, so a key the
        source already judged expired is expired here too."""
        pairs: Writes = [(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        return self._install_chunk(num, lo, hi, after, items, source_time, pairs, None)

    def _install_rows(
        self,
        now: int,
        num: int,
        lo: int,
        hi: int,
        after: bytes | None,
        items: list[bytes],
        source_time: int = 0,
    ) -> Applied:
        """:meth:`_install_at` for a chunk of DB keys of every slot area
        (``ERAFT.MIGRATE.PULL ... RAW``): records, collection rows, and
        garbage markers, so collections move row by row, in chunks."""
        records: Writes = []
        rows: Writes = []
        for i in range(0, len(items) - 1, 2):
            db_key, value = items[i], items[i + 1]
            area = db_key[:2]
            if area not in layout.SLOT_AREAS or not lo <= layout.slot_of(db_key) <= hi:
                continue
            if area == layout.DATA_PREFIX:
                records.append((layout.user_key(db_key), value))
            else:
                rows.append((db_key, value))
        return self._install_chunk(num, lo, hi, after, items, source_time, records, rows)

    def _install_chunk(
        self,
        num: int,
        lo: int,
        hi: int,
        after: bytes | None,
        items: list[bytes],
        source_time: int,
        records: Writes,
        rows: Writes | None,
    ) -> Applied:
        """Install ``records`` (user key -> record) and ``rows`` (collection
        rows and garbage markers by DB key; None for a chunk of records
        only) if the chunk fits the copy."""
        if not self.shards.chunk_fits(num, lo, hi, after):
            return -1, []
        self._advance_time(source_time)
        if after is None:
            self.store.clear_slots(lo, hi)
        for _, record in records:
            self._seen_record(record)
        for db_key, value in rows or ():
            self.store.stage_row(db_key, value)
            self.seen_rev(int.from_bytes(db_key[4:12], "big"))
        self.shards.chunk_installed(num, lo, hi, items[-2] if items else after or b"")
        self._save_shards()
        if rows is not None:
            self.store.stage(records)
            return len(items) // 2, []
        return len(records), records

    def _seen_record(self, record: bytes | None) -> None:
        """The counter moves past an installed record's revision and version."""
        if not record:
            return
        self.seen_rev(record_rev(record))
        if record_type(record) != KeyType.STRING:
            self.seen_rev(unpack_meta(record).version)

    def _install_done(self, now: int, num: int, lo: int, hi: int) -> Applied:
        if not self.shards.install_done(num, lo, hi):
            return 0, []
        self._save_shards()
        return 1, []

    def _release(self, now: int, num: int, lo: int, hi: int) -> Applied:
        runs = self.shards.release(num, lo, hi)
        for run_lo, run_hi in runs:
            self.store.clear_slots(run_lo, run_hi)
        if runs:
            self._save_shards()
        return len(runs), []

    def _notified(self, now: int, num: int, lo: int, hi: int) -> Applied:
        self.shards.notified(num, lo, hi)
        self._save_shards()
        return 1, []
