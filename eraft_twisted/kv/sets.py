"""Set operations: two rows per member.

* ``b"m" + member`` -> the member's position (8 bytes): membership, in
  member order (SMEMBERS, SSCAN, SISMEMBER, SINTER ...);
* ``b"p" + position`` -> the member: the members at positions
  ``0 .. count - 1``, with no gaps, for random picks.

``meta.count`` is the number of members. A new member takes position
``count``; a removed one's position is taken by the member at the last
position, so the positions stay dense.

Random choices (SPOP, SRANDMEMBER) come from a seed the proposer put into
the operation, so every replica chooses the same. A pick is a random
position and a point read of its row: uniform, and no range read (a
LevelDB iterator's snapshot and seek cost more than the rest of an SPOP).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterable, Iterator
from functools import partial

from .collection import DataOps, read_op, write_op
from .records import KeyType, Meta
from .results import Applied, Result
from .scanning import scan_options, scan_page

SET = KeyType.SET

_M, _M_END = b"m", b"n"
"""Membership rows: ``_M + member`` -> position."""
_P = b"p"
"""Position rows: ``_P + position`` -> member."""
_H_OLD, _H_OLD_END = b"h", b"i"
"""Rows in hash order that an earlier development build kept instead of
positions (see :meth:`SetOps._set_renumber`)."""
_POS = struct.Struct(">Q")


def _at(position: int) -> bytes:
    """The sub key of the position row ``position``."""
    return _P + _POS.pack(position)


class SetOps(DataOps):
    """SADD, SREM, SMEMBERS, SPOP, SINTER, SSCAN ... as state machine operations."""

    # -- helpers -------------------------------------------------------------
    def _set_iter(self, meta: Meta, start: bytes = b"") -> Iterator[bytes]:
        """The members from ``start`` on, in member order."""
        return (sub[1:] for sub, _ in self.rows(meta, _M + start, _M_END))

    def _set_members(self, meta: Meta | None) -> list[bytes]:
        return [] if meta is None else list(self._set_iter(meta))

    def _set_has(self, meta: Meta | None, member: bytes) -> bool:
        return meta is not None and self.get_row(meta, _M + member) is not None

    def _set_put(self, meta: Meta, member: bytes, count: int) -> None:
        """Add ``member`` (not in the set) to a set of ``count`` members."""
        position = _POS.pack(count)
        self.put_row(meta, _M + member, position)
        self.put_row(meta, _P + position, member)

    def _set_del(self, meta: Meta, member: bytes, position: bytes, count: int) -> None:
        """Remove ``member``, at ``position`` (packed), from a set of
        ``count`` members: the last member moves into its place."""
        last = _POS.pack(count - 1)
        if position != last:
            moved = self.get_row(meta, _P + last)
            assert moved is not None, "a set's positions are dense"
            self.put_row(meta, _P + position, moved)
            self.put_row(meta, _M + moved, position)
        self.del_row(meta, _P + last)
        self.del_row(meta, _M + member)

    def _set_remove(self, meta: Meta, member: bytes, count: int) -> bool:
        """Remove ``member`` from a set of ``count`` members if it is there."""
        position = self.get_row(meta, _M + member)
        if position is None:
            return False
        self._set_del(meta, member, position, count)
        return True

    def _set_to_write(self, key: bytes, now: int) -> Meta | None:
        """:meth:`collection` for an operation that writes a set: a set
        written by an earlier development build (no positions) gets them
        first."""
        meta = self.collection(key, now, SET)
        if meta is not None and not self._set_positioned(meta):
            self._set_renumber(meta)
        return meta

    def _set_positioned(self, meta: Meta) -> bool:
        return self.get_row(meta, _at(0)) is not None

    def _set_renumber(self, meta: Meta) -> None:
        """Number the members of a set stored without positions (with a row
        in hash order per member instead), in member order: O(n) once, the
        same on every replica."""
        for position, member in enumerate(self._set_members(meta)):
            self._set_put(meta, member, position)
        for sub, _ in list(self.rows(meta, _H_OLD, _H_OLD_END)):
            self.del_row(meta, sub)

    def _set_at(self, meta: Meta, position: int) -> bytes:
        member = self.get_row(meta, _at(position))
        assert member is not None, "a set's positions are dense"
        return member

    def _set_pop(self, meta: Meta, position: int, count: int) -> bytes:
        """Remove and answer the member at ``position`` of a set of ``count``."""
        member = self._set_at(meta, position)
        self._set_del(meta, member, _POS.pack(position), count)
        return member

    def _set_sets(self, keys: list[bytes], now: int) -> list[Meta | None]:
        """The sets at ``keys`` (None for a missing one); WRONGTYPE if any
        key holds another type, whether or not an earlier one is missing."""
        return [self.collection(k, now, SET) for k in keys]

    def _set_inter(self, metas: list[Meta | None], limit: int = 0) -> list[bytes]:
        if not metas or any(m is None for m in metas):
            return []
        present = sorted((m for m in metas if m is not None), key=lambda m: m.count)
        out: list[bytes] = []
        for member in self._set_iter(present[0]):
            if all(self._set_has(m, member) for m in present[1:]):
                out.append(member)
                if limit and len(out) >= limit:
                    break
        return out

    def _set_union(self, metas: list[Meta | None]) -> list[bytes]:
        seen: dict[bytes, None] = {}
        for meta in metas:
            for member in self._set_members(meta):
                seen[member] = None
        return list(seen)

    def _set_diff(self, metas: list[Meta | None]) -> list[bytes]:
        if not metas or metas[0] is None:
            return []
        others = [m for m in metas[1:] if m is not None]
        return [
            member
            for member in self._set_iter(metas[0])
            if not any(self._set_has(m, member) for m in others)
        ]

    def _set_store(self, now: int, dest: bytes, members: list[bytes]) -> Applied:
        """Replace ``dest`` (whatever it holds) by a set of ``members``."""
        if not members:
            self.delete_key(dest, now)
            return 0, []
        meta = self.new_collection(dest, SET)
        for position, member in enumerate(members):
            self._set_put(meta, member, position)
        self.save(dest, meta.changed(meta.rev, count=len(members)))
        return len(members), []

    # -- single key ----------------------------------------------------------
    @write_op()
    def op_sadd(self, now: int, key: bytes, members: list[bytes]) -> Applied:
        """Add ``members``; answers how many were new."""
        meta = self._set_to_write(key, now) or self.new_collection(key, SET)
        added = 0
        for member in dict.fromkeys(members):
            if not self._set_has(meta, member):
                self._set_put(meta, member, meta.count + added)
                added += 1
        if added:
            self.save(key, meta.changed(meta.rev, count=meta.count + added))
        return added, []

    @write_op()
    def op_srem(self, now: int, key: bytes, members: list[bytes]) -> Applied:
        meta = self._set_to_write(key, now)
        if meta is None:
            return 0, []
        removed = 0
        for member in dict.fromkeys(members):
            if self._set_remove(meta, member, meta.count - removed):
                removed += 1
        if removed:
            self.save(key, meta.changed(meta.rev, count=meta.count - removed))
        return removed, []

    @read_op()
    def op_smembers(self, now: int, key: bytes) -> Applied:
        return _res(self._set_members(self.collection(key, now, SET))), []

    @read_op()
    def op_sismember(self, now: int, key: bytes, member: bytes) -> Applied:
        return int(self._set_has(self.collection(key, now, SET), member)), []

    @read_op()
    def op_smismember(self, now: int, key: bytes, members: list[bytes]) -> Applied:
        meta = self.collection(key, now, SET)
        return [int(self._set_has(meta, m)) for m in members], []

    @read_op()
    def op_scard(self, now: int, key: bytes) -> Applied:
        meta = self.collection(key, now, SET)
        return (0 if meta is None else meta.count), []

    @write_op()
    def op_spop(self, now: int, key: bytes, count: int | None, seed: int) -> Applied:
        """Remove and answer a random member (``count`` None), or a list of
        up to ``count`` distinct ones."""
        meta = self._set_to_write(key, now)
        if meta is None or count == 0:
            return (None if count is None else []), []
        if count is not None and count >= meta.count:
            members = self._set_members(meta)
            self.delete_key(key, now)
            return _res(members), []
        if count is None:
            # A 63-bit seed modulo the size: uniform to within size / 2**63.
            member = self._set_pop(meta, seed % meta.count, meta.count)
            self.save(key, meta.changed(meta.rev, count=meta.count - 1))
            return member, []
        rng = random.Random(seed)
        popped: list[bytes] = []
        for left in range(meta.count, meta.count - count, -1):
            popped.append(self._set_pop(meta, rng.randrange(left), left))
        self.save(key, meta.changed(meta.rev, count=meta.count - len(popped)))
        return _res(popped), []

    @read_op()
    def op_srandmember(self, now: int, key: bytes, count: int | None, seed: int) -> Applied:
        """A random member (``count`` None); ``count`` > 0 distinct ones;
        ``count`` < 0: ``-count`` picks, repeats allowed."""
        meta = self.collection(key, now, SET)
        if meta is None or count == 0:
            return (None if count is None else []), []
        rng = random.Random(seed)
        size = meta.count
        at: Callable[[int], bytes] = partial(self._set_at, meta)
        if not self._set_positioned(meta) or (count is not None and -count > size):
            # One read of the whole set: more picks than members, or a set
            # stored without positions by an earlier build (a read cannot
            # renumber it).
            at = self._set_members(meta).__getitem__
        if count is None:
            return at(seed % size), []
        if count < 0:
            return _res(at(rng.randrange(size)) for _ in range(-count)), []
        if count >= size:
            return _res(self._set_members(meta)), []
        if count * 3 > size:
            # Most of the set is wanted: reading it all is what Redis does too.
            return _res(rng.sample(self._set_members(meta), count)), []
        return _res(at(p) for p in rng.sample(range(size), count)), []

    @read_op()
    def op_sscan(self, now: int, key: bytes, start: bytes, options: list[bytes]) -> Applied:
        """``[cursor, members]``: up to COUNT members from ``start`` (the
        options are checked here: Redis checks them only for a set)."""
        meta = self.collection(key, now, SET)
        if meta is None:
            return [b"0", []], []
        rows = ((member, b"") for member in self._set_iter(meta, start))
        cursor, found = scan_page(rows, start, *scan_options(options))
        return [cursor, [member for member, _ in found]], []

    # -- several keys --------------------------------------------------------
    @read_op("list")
    def op_sinter(self, now: int, keys: list[bytes]) -> Applied:
        return _res(self._set_inter(self._set_sets(keys, now))), []

    @read_op("list")
    def op_sintercard(self, now: int, keys: list[bytes], limit: int) -> Applied:
        return len(self._set_inter(self._set_sets(keys, now), limit)), []

    @read_op("list")
    def op_sunion(self, now: int, keys: list[bytes]) -> Applied:
        return _res(self._set_union(self._set_sets(keys, now))), []

    @read_op("list")
    def op_sdiff(self, now: int, keys: list[bytes]) -> Applied:
        return _res(self._set_diff(self._set_sets(keys, now))), []

    @write_op("list")
    def op_sinterstore(self, now: int, keys: list[bytes]) -> Applied:
        """``keys`` = destination, sources...; answers the stored size."""
        return self._set_store(now, keys[0], self._set_inter(self._set_sets(keys[1:], now)))

    @write_op("list")
    def op_sunionstore(self, now: int, keys: list[bytes]) -> Applied:
        return self._set_store(now, keys[0], self._set_union(self._set_sets(keys[1:], now)))

    @write_op("list")
    def op_sdiffstore(self, now: int, keys: list[bytes]) -> Applied:
        return self._set_store(now, keys[0], self._set_diff(self._set_sets(keys[1:], now)))

    @write_op("two")
    def op_smove(self, now: int, src: bytes, dst: bytes, member: bytes) -> Applied:
        source = self._set_to_write(src, now)
        if source is None:
            return 0, []
        target = self._set_to_write(dst, now)
        if src == dst:
            return int(self._set_has(source, member)), []
        if not self._set_remove(source, member, source.count):
            return 0, []
        self.save(src, source.changed(source.rev, count=source.count - 1))
        target = target or self.new_collection(dst, SET)
        if not self._set_has(target, member):
            self._set_put(target, member, target.count)
            self.save(dst, target.changed(target.rev, count=target.count + 1))
        return 1, []


def _res(members: Iterable[bytes]) -> Result:
    """``members`` as an operation's result."""
    out: list[Result] = list(members)
    return out
