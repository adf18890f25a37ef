"""List operations: one row per element, sub key = its position (8 bytes,
big-endian, offset by 2**63 so order is numeric), between the metadata's
head (first) and tail (one past the last). Pushes and pops at either end
touch one row; LINDEX/LSET reach ``head + index`` directly; only the
middle operations Redis also does in O(N) (LREM, LINSERT, LTRIM) move rows.
"""

from __future__ import annotations

import struct

from .collection import DataOps, read_op, refuse, write_op
from .numbers import parse_ll as parse_int64
from .records import KeyType, Meta
from .results import OK, Applied, Result

LIST = KeyType.LIST
_POS = struct.Struct(">Q")
_OFFSET = 2**63
_INT64_MIN = -(2**63)

NIL_ARRAY = False
"""What LPOP/RPOP with a count answer for a missing key: the command layer
replies a null array (``*-1`` in RESP2), unlike the count-less form's nil."""


def _sub(pos: int) -> bytes:
    return _POS.pack(pos + _OFFSET)


def _index_arg(raw: bytes) -> int:
    n = parse_int64(raw)
    if n is None:
        raise refuse("value is not an integer or out of range")
    return n


def _span(count: int, start: int, stop: int) -> tuple[int, int] | None:
    """Redis's LRANGE/LTRIM range: ``(first, last)`` indexes, None if empty."""
    if start < 0:
        start += count
    if stop < 0:
        stop += count
    start = max(start, 0)
    if start > stop or start >= count:
        return None
    return start, min(stop, count - 1)


class ListOps(DataOps):
    """LPUSH, LPOP, LRANGE, LINSERT, LMOVE ... as state machine operations."""

    # -- helpers -------------------------------------------------------------
    def _values(self, meta: Meta, first: int, last: int) -> list[bytes]:
        """Elements at indexes ``first..last`` (inclusive), in order. (Read
        forwards only: plyvel 1.5's reverse iterator skips a range whose
        only key is its start.)"""
        if last - first < 16:  # a few point reads are cheaper than a range read
            found = [self.get_row(meta, _sub(meta.head + i)) for i in range(first, last + 1)]
            return [v for v in found if v is not None]
        lo, hi = _sub(meta.head + first), _sub(meta.head + last + 1)
        return [value for _, value in self.rows(meta, lo, hi)]

    def _push(self, meta: Meta, values: list[bytes], left: bool) -> Meta:
        head, tail = meta.head, meta.tail
        for value in values:
            if left:
                head -= 1
                self.put_row(meta, _sub(head), value)
            else:
                self.put_row(meta, _sub(tail), value)
                tail += 1
        return meta.changed(meta.rev, head=head, tail=tail, count=tail - head)

    def _pop(self, meta: Meta, n: int, left: bool) -> tuple[list[bytes], Meta]:
        """Take ``n`` (at most the length) elements from one end."""
        n = min(n, meta.count)
        if left:
            popped = self._values(meta, 0, n - 1)
            first = meta.head
            head, tail = meta.head + n, meta.tail
        else:
            popped = self._values(meta, meta.count - n, meta.count - 1)[::-1]
            first = meta.tail - n
            head, tail = meta.head, meta.tail - n
        for pos in range(first, first + n):
            self.del_row(meta, _sub(pos))
        return popped, meta.changed(meta.rev, head=head, tail=tail, count=tail - head)

    def _splice(self, meta: Meta, first: int, old: list[bytes], new: list[bytes]) -> Meta:
        """Replace the elements ``old`` at indexes ``first...`` with ``new``,
        where ``old`` is the list's front (``first == 0``: its last position
        stays) or its back (its first position stays). Rewrites only rows
        whose element changed."""
        front = first == 0 and len(old) < meta.count
        start = meta.head + first
        new_start = start + len(old) - len(new) if front else start
        before = {start + i: v for i, v in enumerate(old)}
        after = {new_start + i: v for i, v in enumerate(new)}
        for pos, value in after.items():
            if before.get(pos) != value:
                self.put_row(meta, _sub(pos), value)
        for pos in sorted(before.keys() - after.keys()):
            self.del_row(meta, _sub(pos))
        if front:
            head, tail = new_start, meta.tail
        else:
            head, tail = meta.head, start + len(new)
        return meta.changed(meta.rev, head=head, tail=tail, count=tail - head)

    # -- pushes and pops -----------------------------------------------------
    @write_op()
    def op_lpush(self, now: int, key: bytes, values: list[bytes], only_if: bool = False) -> Applied:
        """Push ``values`` at the head, one after the other; ``only_if``
        (LPUSHX): only onto an existing list. Answers the new length."""
        return self._push_op(now, key, values, True, only_if)

    @write_op()
    def op_rpush(self, now: int, key: bytes, values: list[bytes], only_if: bool = False) -> Applied:
        """Push ``values`` at the tail (RPUSHX when ``only_if``)."""
        return self._push_op(now, key, values, False, only_if)

    def _push_op(
        self, now: int, key: bytes, values: list[bytes], left: bool, only_if: bool
    ) -> Applied:
        meta = self.collection(key, now, LIST)
        if meta is None:
            if only_if:
                return 0, []
            meta = self.new_collection(key, LIST)
        meta = self._push(meta, values, left)
        self.save(key, meta)
        return meta.count, []

    @write_op()
    def op_lpop(self, now: int, key: bytes, n: int | None = None) -> Applied:
        """Pop one element (``n`` None: the element or nil) or up to ``n``
        (a list, or :data:`NIL_ARRAY` for a missing key) from the head."""
        return self._pop_op(now, key, n, True)

    @write_op()
    def op_rpop(self, now: int, key: bytes, n: int | None = None) -> Applied:
        """Pop from the tail, as :meth:`op_lpop`."""
        return self._pop_op(now, key, n, False)

    def _pop_op(self, now: int, key: bytes, n: int | None, left: bool) -> Applied:
        meta = self.collection(key, now, LIST)
        if meta is None:
            return (None if n is None else NIL_ARRAY), []
        if n == 0:
            return [], []
        popped, meta = self._pop(meta, 1 if n is None else n, left)
        self.save(key, meta)
        return (popped[0] if n is None else list[Result](popped)), []

    @write_op("two")
    def op_lmove(self, now: int, src: bytes, dst: bytes, from_left: bool, to_left: bool) -> Applied:
        """Move an element from one end of ``src`` to one end of ``dst``
        (the same key allowed); answers it, or nil if ``src`` is missing."""
        source = self.collection(src, now, LIST)
        if source is None:
            return None, []
        target = self.collection(dst, now, LIST)
        popped, source = self._pop(source, 1, from_left)
        if dst == src:
            target = source
        else:
            self.save(src, source)
            if target is None:
                target = self.new_collection(dst, LIST)
        self.save(dst, self._push(target, popped, to_left))
        return popped[0], []

    @write_op("list")
    def op_bpop(self, now: int, keys: list[bytes], left: bool) -> Applied:
        """BLPOP/BRPOP's pop: one element from the first non-empty list of
        ``keys`` as ``[key, element]``, or nil if all are empty (the caller
        then waits for a push). A key of another type is WRONGTYPE."""
        for key in keys:
            meta = self.collection(key, now, LIST)
            if meta is not None:
                popped, meta = self._pop(meta, 1, left)
                self.save(key, meta)
                return [key, popped[0]], []
        return None, []

    # -- reads ---------------------------------------------------------------
    @read_op()
    def op_llen(self, now: int, key: bytes) -> Applied:
        meta = self.collection(key, now, LIST)
        return (0 if meta is None else meta.count), []

    @read_op()
    def op_lrange(self, now: int, key: bytes, start: int, stop: int) -> Applied:
        meta = self.collection(key, now, LIST)
        span = None if meta is None else _span(meta.count, start, stop)
        if meta is None or span is None:
            return [], []
        return list[Result](self._values(meta, *span)), []

    @read_op()
    def op_lindex(self, now: int, key: bytes, raw_index: bytes) -> Applied:
        """The element at an index (parsed here: Redis looks the key up
        first, so a missing key answers nil whatever the index)."""
        meta = self.collection(key, now, LIST)
        if meta is None:
            return None, []
        index = _index_arg(raw_index)
        if index < 0:
            index += meta.count
        if not 0 <= index < meta.count:
            return None, []
        return self.get_row(meta, _sub(meta.head + index)), []

    @read_op()
    def op_lpos(
        self, now: int, key: bytes, element: bytes, rank: int, n: int | None, maxlen: int
    ) -> Applied:
        """Indexes of matches of ``element``: the ``rank``-th (negative:
        from the tail) and on, ``n`` of them (0: all; None: one index or
        nil), comparing at most ``maxlen`` elements (0: all)."""
        meta = self.collection(key, now, LIST)
        found: list[int] = []
        if meta is not None:
            reverse = rank < 0
            # Redis 7.0 negates LONG_MIN to itself: every match then counts.
            skip = 0 if rank == _INT64_MIN else abs(rank) - 1
            want = 1 if n is None else n
            for seen, (sub, value) in enumerate(self.rows(meta, reverse=reverse)):
                if maxlen and seen >= maxlen:
                    break
                if value != element:
                    continue
                if skip:
                    skip -= 1
                    continue
                found.append(_POS.unpack(sub)[0] - _OFFSET - meta.head)
                if want and len(found) >= want:
                    break
        if n is None:
            return (found[0] if found else None), []
        return list[Result](found), []

    # -- changes in place and in the middle ----------------------------------
    @write_op()
    def op_lset(self, now: int, key: bytes, raw_index: bytes, value: bytes) -> Applied:
        meta = self.collection(key, now, LIST)
        if meta is None:
            raise refuse("no such key")
        index = _index_arg(raw_index)
        if index < 0:
            index += meta.count
        if not 0 <= index < meta.count:
            raise refuse("index out of range")
        self.put_row(meta, _sub(meta.head + index), value)
        self.save(key, meta)
        return OK, []

    @write_op()
    def op_lrem(self, now: int, key: bytes, n: int, element: bytes) -> Applied:
        """Remove up to ``n`` (0: all; negative: from the tail) ``element``s."""
        meta = self.collection(key, now, LIST)
        if meta is None:
            return 0, []
        reverse = n < 0
        want = abs(n)
        scanned: list[bytes] = []
        removed = 0
        last = 0
        for value in (v for _, v in self.rows(meta, reverse=reverse)):
            scanned.append(value)
            if value == element:
                removed += 1
                last = len(scanned)
                if want and removed >= want:
                    break
        if not removed:
            return 0, []
        # Only the scanned part up to the last removal moves.
        old = scanned[:last]
        kept = [v for v in old if v != element]
        if reverse:
            old.reverse()
            kept.reverse()
            meta = self._splice(meta, meta.count - last, old, kept)
        else:
            meta = self._splice(meta, 0, old, kept)
        self.save(key, meta)
        return removed, []

    @write_op()
    def op_linsert(
        self, now: int, key: bytes, before: bool, pivot: bytes, element: bytes
    ) -> Applied:
        """Insert ``element`` before or after the first ``pivot``; answers
        the new length, -1 without a pivot, 0 without a list."""
        meta = self.collection(key, now, LIST)
        if meta is None:
            return 0, []
        prefix: list[bytes] = []
        for _, value in self.rows(meta):
            prefix.append(value)
            if value == pivot:
                break
        else:
            return -1, []
        at = len(prefix) - 1 if before else len(prefix)
        # Move whichever side of the insertion point is shorter.
        if at <= meta.count - at:
            old = prefix[:at]
            meta = self._splice(meta, 0, old, old + [element])
        else:
            old = self._values(meta, at, meta.count - 1)
            meta = self._splice(meta, at, old, [element] + old)
        self.save(key, meta)
        return meta.count, []

    @write_op()
    def op_ltrim(self, now: int, key: bytes, start: int, stop: int) -> Applied:
        """Keep only the elements ``start..stop`` (LRANGE's indexes)."""
        meta = self.collection(key, now, LIST)
        if meta is None:
            return OK, []
        span = _span(meta.count, start, stop)
        if span is None:
            # All go: one garbage marker drops the rows through the log.
            self.delete_key(key, now)
            return OK, []
        first, last = span
        for pos in range(meta.head, meta.head + first):
            self.del_row(meta, _sub(pos))
        for pos in range(meta.head + last + 1, meta.tail):
            self.del_row(meta, _sub(pos))
        if first or last < meta.count - 1:
            head, tail = meta.head + first, meta.head + last + 1
            self.save(key, meta.changed(meta.rev, head=head, tail=tail, count=tail - head))
        return OK, []
