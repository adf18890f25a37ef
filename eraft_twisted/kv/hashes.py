"""Hash operations: one row per field (``sub key = field``, value = the
field's value) under the hash's version (see :mod:`.records`)."""

from __future__ import annotations

from .collection import DataOps, read_op, write_op
from .records import KeyType
from .results import Applied

HASH = KeyType.HASH


class HashOps(DataOps):
    """HSET, HGET, HDEL, HLEN, HGETALL ... as state machine operations."""

    @write_op()
    def op_hset(self, now: int, key: bytes, pairs: list[bytes]) -> Applied:
        """Set ``field, value, ...``; answers how many fields are new."""
        meta = self.collection(key, now, HASH) or self.new_collection(key, HASH)
        added = 0
        for i in range(0, len(pairs) - 1, 2):
            field, value = pairs[i], pairs[i + 1]
            if self.get_row(meta, field) is None:
                added += 1
            self.put_row(meta, field, value)
        self.save(key, meta.changed(meta.rev, count=meta.count + added))
        return added, []

    @read_op()
    def op_hget(self, now: int, key: bytes, field: bytes) -> Applied:
        meta = self.collection(key, now, HASH)
        return (None if meta is None else self.get_row(meta, field)), []

    @write_op()
    def op_hdel(self, now: int, key: bytes, fields: list[bytes]) -> Applied:
        meta = self.collection(key, now, HASH)
        if meta is None:
            return 0, []
        removed = 0
        for field in dict.fromkeys(fields):
            if self.get_row(meta, field) is not None:
                self.del_row(meta, field)
                removed += 1
        if removed:
            self.save(key, meta.changed(meta.rev, count=meta.count - removed))
        return removed, []

    @read_op()
    def op_hlen(self, now: int, key: bytes) -> Applied:
        meta = self.collection(key, now, HASH)
        return (0 if meta is None else meta.count), []

    @read_op()
    def op_hgetall(self, now: int, key: bytes) -> Applied:
        meta = self.collection(key, now, HASH)
        if meta is None:
            return [], []
        return [x for field, value in self.rows(meta) for x in (field, value)], []
