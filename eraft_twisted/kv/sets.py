"""Set operations: two rows per member, both with an empty value:

* ``b"m" + member``: membership, in member order (SMEMBERS, SSCAN,
  SISMEMBER, SINTER ...);
* ``b"h" + h8(member) + member``, ``h8`` the member's 8-byte BLAKE2b
  digest: the members in a random order that does not depend on their
  names, for random picks.

``meta.count`` is the number of members; every change writes or deletes
both rows of a member.

Random choices (SPOP, SRANDMEMBER) come from a seed the proposer put into
the operation, so every replica chooses the same. A pick is one seek: to
``b"h"`` + 8 random bytes, taking the first ``h`` row at or after it
(wrapping to the first). A member's chance is the hash gap before it:
random, and not biased by member names (Redis's picks are not exactly
uniform either). A set of at most 16 members is read whole and the choice
is uniform.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator

from .collection import DataOps, read_op, write_op
from .records import KeyType, Meta
from .results import Applied, Result
from .scanning import scan_options, scan_page

SET = KeyType.SET

_M, _M_END = b"m", b"n"
"""Membership rows: ``_M + member``."""
_H, _H_END = b"h", b"i"
"""Random-order rows: ``_H + h8(member) + member``."""
_HASH = 8
"""Bytes of a member's digest in its ``h`` row."""
_SMALL = 16
"""A set this small is read whole for a pick (a uniform one)."""


def _h_row(member: bytes) -> bytes:
    """The ``h`` row's sub key of ``member``."""
    return _H + hashlib.blake2b(member, digest_size=_HASH).digest() + member


def _member(h_sub: bytes) -> bytes:
    """The member of an ``h`` row's sub key."""
    return h_sub[1 + _HASH :]


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

    def _set_put(self, meta: Meta, member: bytes) -> None:
        self.put_row(meta, _M + member, b"")
        self.put_row(meta, _h_row(member), b"")

    def _set_del(self, meta: Meta, member: bytes) -> None:
        self.del_row(meta, _M + member)
        self.del_row(meta, _h_row(member))

    def _set_from(self, meta: Meta, start: bytes) -> Iterator[bytes]:
        """The members in hash order from the ``h`` sub key ``start`` on,
        wrapping to the first (the second read is opened only if needed)."""
        for sub, _ in self.rows(meta, start, _H_END):
            yield _member(sub)
        for sub, _ in self.rows(meta, _H, start):
            yield _member(sub)

    def _set_pick(self, meta: Meta, rng: random.Random, count: int) -> bytes:
        """A member of a non-empty set of ``count`` members (see the module doc)."""
        if count <= _SMALL:
            members = self._set_members(meta)
            return members[rng.randrange(len(members))]
        return next(self._set_from(meta, _H + rng.randbytes(_HASH)))

    def _set_pick_one(self, meta: Meta, seed: int) -> bytes:
        """:meth:`_set_pick` for a single pick: the seek position comes
        straight from the seed (building a ``random.Random`` costs more
        than the seek)."""
        if meta.count <= _SMALL:
            return self._set_pick(meta, random.Random(seed), meta.count)
        where = hashlib.blake2b(seed.to_bytes(8, "big"), digest_size=_HASH).digest()
        return next(self._set_from(meta, _H + where))

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
        for member in members:
            self._set_put(meta, member)
        self.save(dest, meta.changed(meta.rev, count=len(members)))
        return len(members), []

    # -- single key ----------------------------------------------------------
    @write_op()
    def op_sadd(self, now: int, key: bytes, members: list[bytes]) -> Applied:
        """Add ``members``; answers how many were new."""
        meta = self.collection(key, now, SET) or self.new_collection(key, SET)
        added = 0
        for member in dict.fromkeys(members):
            if not self._set_has(meta, member):
                self._set_put(meta, member)
                added += 1
        if added:
            self.save(key, meta.changed(meta.rev, count=meta.count + added))
        return added, []

    @write_op()
    def op_srem(self, now: int, key: bytes, members: list[bytes]) -> Applied:
        meta = self.collection(key, now, SET)
        if meta is None:
            return 0, []
        removed = 0
        for member in dict.fromkeys(members):
            if self._set_has(meta, member):
                self._set_del(meta, member)
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
        meta = self.collection(key, now, SET)
        if meta is None or count == 0:
            return (None if count is None else []), []
        if count is not None and count >= meta.count:
            members = self._set_members(meta)
            self.delete_key(key, now)
            return _res(members), []
        if count is None:
            member = self._set_pick_one(meta, seed)
            self._set_del(meta, member)
            self.save(key, meta.changed(meta.rev, count=meta.count - 1))
            return member, []
        rng = random.Random(seed)
        popped: list[bytes] = []
        for _ in range(count):
            # Each pick sees the rows deleted by the ones before it.
            member = self._set_pick(meta, rng, meta.count - len(popped))
            self._set_del(meta, member)
            popped.append(member)
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
        if count is None:
            return self._set_pick(meta, rng, meta.count), []
        if count < 0:
            if meta.count <= _SMALL:
                members = self._set_members(meta)
                return _res(members[rng.randrange(len(members))] for _ in range(-count)), []
            return _res(self._set_pick(meta, rng, meta.count) for _ in range(-count)), []
        if count >= meta.count:
            return _res(self._set_members(meta)), []
        if count * 3 > meta.count:
            # Most of the set is wanted: reading it all is what Redis does too.
            return _res(rng.sample(self._set_members(meta), count)), []
        chosen: dict[bytes, None] = {}
        while len(chosen) < count:
            start = _H + rng.randbytes(_HASH)
            # Walk on in hash order past members already chosen.
            chosen[next(m for m in self._set_from(meta, start) if m not in chosen)] = None
        return _res(chosen), []

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
        source = self.collection(src, now, SET)
        if source is None:
            return 0, []
        target = self.collection(dst, now, SET)
        if src == dst or not self._set_has(source, member):
            return int(self._set_has(source, member)), []
        self._set_del(source, member)
        self.save(src, source.changed(source.rev, count=source.count - 1))
        target = target or self.new_collection(dst, SET)
        if not self._set_has(target, member):
            self._set_put(target, member)
            self.save(dst, target.changed(target.rev, count=target.count + 1))
        return 1, []


def _res(members: Iterable[bytes]) -> Result:
    """``members`` as an operation's result."""
    out: list[Result] = list(members)
    return out
