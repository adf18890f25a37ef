"""Hash operations: one row per field (``sub key = field``, value = the
field's value) under the hash's version (see :mod:`.records`)."""

from __future__ import annotations

import random
from itertools import chain, islice

from .collection import DataOps, read_op, refuse, write_op
from .longdouble import add_ld, format_ld, parse_ld
from .numbers import LLONG_MAX, LLONG_MIN, parse_ll
from .records import KeyType, Meta
from .results import OK, Applied
from .scanning import scan_options, scan_page

HASH = KeyType.HASH
_SMALL = 512
"""Up to this many fields, a random pick reads the whole hash (as cheap
as a few seeks) and is exactly uniform."""


class HashOps(DataOps):
    """HSET, HGET, HDEL, HINCRBY, HSCAN ... as state machine operations."""

    # -- writes ----------------------------------------------------------------
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

    @write_op()
    def op_hmset(self, now: int, key: bytes, pairs: list[bytes]) -> Applied:
        """HSET answering OK."""
        self.op_hset(now, key, pairs)
        return OK, []

    @write_op()
    def op_hsetnx(self, now: int, key: bytes, field: bytes, value: bytes) -> Applied:
        """Set ``field`` only if it is absent; 1 if it was set."""
        meta = self.collection(key, now, HASH)
        if meta is not None and self.get_row(meta, field) is not None:
            return 0, []
        meta = meta or self.new_collection(key, HASH)
        self.put_row(meta, field, value)
        self.save(key, meta.changed(meta.rev, count=meta.count + 1))
        return 1, []

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

    def _put_number(self, key: bytes, meta: Meta | None, field: bytes, value: bytes) -> None:
        if meta is None:
            meta = self.new_collection(key, HASH)
            self.put_row(meta, field, value)
            self.save(key, meta.changed(meta.rev, count=1))
            return
        added = self.get_row(meta, field) is None
        self.put_row(meta, field, value)
        self.save(key, meta.changed(meta.rev, count=meta.count + added))

    @write_op()
    def op_hincrby(self, now: int, key: bytes, field: bytes, incr: int) -> Applied:
        """Add ``incr`` to the integer in ``field`` (0 if absent)."""
        meta = self.collection(key, now, HASH)
        raw = None if meta is None else self.get_row(meta, field)
        value = 0 if raw is None else parse_ll(raw)
        if value is None:
            raise refuse("hash value is not an integer")
        total = value + incr
        if not LLONG_MIN <= total <= LLONG_MAX:
            raise refuse("increment or decrement would overflow")
        self._put_number(key, meta, field, str(total).encode())
        return total, []

    @write_op()
    def op_hincrbyfloat(self, now: int, key: bytes, field: bytes, incr: bytes) -> Applied:
        """Add ``incr`` to the number in ``field`` in long double, as Redis."""
        step = parse_ld(incr)
        if step is None:
            raise refuse("value is not a valid float")
        if isinstance(step, float):
            raise refuse("value is NaN or Infinity")
        meta = self.collection(key, now, HASH)
        raw = None if meta is None else self.get_row(meta, field)
        value = parse_ld(b"0" if raw is None else raw)
        if value is None:
            raise refuse("hash value is not a float")
        total = add_ld(value, step)
        if total is None:
            raise refuse("increment would produce NaN or Infinity")
        text = format_ld(total)
        self._put_number(key, meta, field, text)
        return text, []

    # -- reads ---------------------------------------------------------------
    @read_op()
    def op_hget(self, now: int, key: bytes, field: bytes) -> Applied:
        meta = self.collection(key, now, HASH)
        return (None if meta is None else self.get_row(meta, field)), []

    @read_op()
    def op_hmget(self, now: int, key: bytes, fields: list[bytes]) -> Applied:
        meta = self.collection(key, now, HASH)
        if meta is None:
            return [None] * len(fields), []
        return [self.get_row(meta, f) for f in fields], []

    @read_op()
    def op_hexists(self, now: int, key: bytes, field: bytes) -> Applied:
        meta = self.collection(key, now, HASH)
        return int(meta is not None and self.get_row(meta, field) is not None), []

    @read_op()
    def op_hstrlen(self, now: int, key: bytes, field: bytes) -> Applied:
        meta = self.collection(key, now, HASH)
        value = None if meta is None else self.get_row(meta, field)
        return (0 if value is None else len(value)), []

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

    @read_op()
    def op_hkeys(self, now: int, key: bytes) -> Applied:
        meta = self.collection(key, now, HASH)
        return ([] if meta is None else [f for f, _ in self.rows(meta)]), []

    @read_op()
    def op_hvals(self, now: int, key: bytes) -> Applied:
        meta = self.collection(key, now, HASH)
        return ([] if meta is None else [v for _, v in self.rows(meta)]), []

    @read_op()
    def op_hscan(self, now: int, key: bytes, start: bytes, options: list[bytes]) -> Applied:
        """``[cursor, [field, value, ...]]``: up to COUNT rows from ``start``
        (the options are checked here: Redis checks them only for a hash)."""
        meta = self.collection(key, now, HASH)
        if meta is None:
            return [b"0", []], []
        cursor, found = scan_page(self.rows(meta, start), start, *scan_options(options))
        return [cursor, [x for row in found for x in row]], []

    @read_op()
    def op_hrandfield(
        self, now: int, key: bytes, count: int | None, withvalues: bool, seed: int
    ) -> Applied:
        """A random field (``count`` None), or ``count`` distinct ones, or
        ``-count`` picks that may repeat; with values: ``[[field, value], ...]``."""
        meta = self.collection(key, now, HASH)
        if meta is None:
            return (None if count is None else []), []
        rng = random.Random(seed)
        if count is None:
            return self._picks(meta, rng, 1)[0][0], []
        if count == 0:
            return [], []
        if count < 0:
            rows = self._picks(meta, rng, -count)
        elif count >= meta.count:
            rows = list(self.rows(meta))
        else:
            rows = self._distinct(meta, rng, count)
        if withvalues:
            return [[f, v] for f, v in rows], []
        return [f for f, _ in rows], []

    # -- random picks --------------------------------------------------------
    def _picks(self, meta: Meta, rng: random.Random, n: int) -> list[tuple[bytes, bytes]]:
        """``n`` random rows, repeats allowed."""
        if meta.count <= _SMALL:
            rows = list(self.rows(meta))
            return [rows[rng.randrange(len(rows))] for _ in range(n)]
        bounds = self._bounds(meta)
        return [self._seek_pick(meta, rng, bounds) for _ in range(n)]

    def _distinct(self, meta: Meta, rng: random.Random, n: int) -> list[tuple[bytes, bytes]]:
        """``n`` distinct random rows (``n`` below the hash's size)."""
        if meta.count <= _SMALL or n * 3 > meta.count:
            return rng.sample(list(self.rows(meta)), n)
        bounds = self._bounds(meta)
        chosen: dict[bytes, bytes] = {}
        for _ in range(n * 3):
            field, value = self._seek_pick(meta, rng, bounds)
            chosen[field] = value
            if len(chosen) == n:
                return list(chosen.items())
        # unlucky: take the rows that follow a random point (wrapping)
        start = self._seek_pick(meta, rng, bounds)[0]
        for field, value in chain(self.rows(meta, start), self.rows(meta, b"", start)):
            chosen.setdefault(field, value)
            if len(chosen) == n:
                break
        return list(chosen.items())

    def _bounds(self, meta: Meta) -> tuple[bytes, int, int]:
        """The shared prefix of the first and last fields and the 8 bytes
        after it of each, as integers: where random seeks land."""
        first = next(self.rows(meta))[0]
        last = next(self.rows(meta, reverse=True))[0]
        n = 0
        while n < min(len(first), len(last)) and first[n] == last[n]:
            n += 1
        lo = int.from_bytes(first[n : n + 8].ljust(8, b"\0"), "big")
        hi = int.from_bytes(last[n : n + 8].ljust(8, b"\0"), "big")
        return first[:n], lo, hi

    def _seek_pick(
        self, meta: Meta, rng: random.Random, bounds: tuple[bytes, int, int]
    ) -> tuple[bytes, bytes]:
        # O(log N): the row at or after a random point between the first and
        # last fields (roughly uniform when fields spread evenly)
        prefix, lo, hi = bounds
        point = prefix + rng.randint(lo, hi).to_bytes(8, "big")
        for row in islice(self.rows(meta, point), 1):
            return row
        return next(self.rows(meta))
