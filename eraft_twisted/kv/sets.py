"""Set operations: one row per member (sub key = member, empty value);
``meta.count`` is the number of members.

Random choices (SPOP, SRANDMEMBER) come from a seed the proposer put into
the operation, so every replica chooses the same. A single pick does not
scan the set: it seeks to a random sub key (the common prefix of the first
and last members, then random bytes among those a few members use after
it), then steps 0 to 15 members on from there (wrapping to the first). A
member that follows a wide gap in the key space is therefore more likely
than one in a dense run: the choice is not uniform (Redis's is not either).
A set of at most 16 members is read whole and the choice is uniform.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from itertools import chain
from typing import NamedTuple

from .collection import DataOps, read_op, write_op
from .records import KeyType, Meta
from .results import Applied, Result
from .scanning import scan_options, scan_page

SET = KeyType.SET

_PAD = 2
"""Random bytes past the longer of the first and last member in a seek key."""
_STEPS = 16
"""A pick steps up to this many members on from where it seeks."""
_SMALL = 16
"""A set this small is read whole for a pick (a uniform one)."""
_SAMPLES = 8
"""Members a pick's alphabet is learnt from (with the first and the last)."""


class _Bounds(NamedTuple):
    first: bytes
    last: bytes
    prefix: int
    alphabet: bytes
    size: int
    members: int


class SetOps(DataOps):
    """SADD, SREM, SMEMBERS, SPOP, SINTER, SSCAN ... as state machine operations."""

    # -- helpers -------------------------------------------------------------
    def _set_members(self, meta: Meta | None) -> list[bytes]:
        return [] if meta is None else [m for m, _ in self.rows(meta)]

    def _set_has(self, meta: Meta | None, member: bytes) -> bool:
        return meta is not None and self.get_row(meta, member) is not None

    def _set_bounds(self, meta: Meta, count: int) -> _Bounds:
        """What a pick seeks between: the first and last members of a
        non-empty set of ``count`` members, their common prefix's length
        and the bytes members use after it (from those two and a few
        seeks between them)."""
        if count <= _SMALL:
            return _Bounds(b"", b"", 0, b"", 0, count)  # read whole for a pick
        first = next(self.rows(meta))[0]
        last = next(self.rows(meta, reverse=True))[0]
        prefix = 0
        while first[prefix : prefix + 1] == last[prefix : prefix + 1] and prefix < len(first):
            prefix += 1
        head = first[:prefix]
        used = set(first[prefix:] + last[prefix:])
        lo, hi = min(used), max(used)
        for i in range(1, _SAMPLES):
            row = next(self.rows(meta, start=head + bytes([lo + (hi - lo) * i // _SAMPLES])), None)
            if row is not None:
                used.update(row[0][prefix:])
        size = max(len(first), len(last)) - prefix + _PAD
        return _Bounds(first, last, prefix, bytes(sorted(used)), size, count)

    def _set_pick(self, meta: Meta, rng: random.Random, bounds: _Bounds) -> bytes:
        """A member chosen by seeking to a random sub key (see the module doc)."""
        if bounds.members <= _SMALL:
            members = [m for m, _ in self.rows(meta)]
            return members[rng.randrange(len(members))]
        alphabet = bounds.alphabet
        tail = bytes(alphabet[rng.randrange(len(alphabet))] for _ in range(bounds.size))
        start = bounds.first[: bounds.prefix] + tail
        # Step a few members on, so one after a wide gap shares its odds.
        steps = rng.randrange(_STEPS)
        for sub, _ in chain(self.rows(meta, start=start), self.rows(meta, stop=start)):
            if not steps:
                return sub
            steps -= 1
        return bounds.first  # fewer members than steps: the walk wrapped

    def _set_sets(self, keys: list[bytes], now: int) -> list[Meta | None]:
        """The sets at ``keys`` (None for a missing one); WRONGTYPE if any
        key holds another type, whether or not an earlier one is missing."""
        return [self.collection(k, now, SET) for k in keys]

    def _set_inter(self, metas: list[Meta | None], limit: int = 0) -> list[bytes]:
        if not metas or any(m is None for m in metas):
            return []
        present = sorted((m for m in metas if m is not None), key=lambda m: m.count)
        out: list[bytes] = []
        for member, _ in self.rows(present[0]):
            if all(self.get_row(m, member) is not None for m in present[1:]):
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
            for member, _ in self.rows(metas[0])
            if not any(self.get_row(m, member) is not None for m in others)
        ]

    def _set_store(self, now: int, dest: bytes, members: list[bytes]) -> Applied:
        """Replace ``dest`` (whatever it holds) by a set of ``members``."""
        if not members:
            self.delete_key(dest, now)
            return 0, []
        meta = self.new_collection(dest, SET)
        for member in members:
            self.put_row(meta, member, b"")
        self.save(dest, meta.changed(meta.rev, count=len(members)))
        return len(members), []

    # -- single key ----------------------------------------------------------
    @write_op()
    def op_sadd(self, now: int, key: bytes, members: list[bytes]) -> Applied:
        """Add ``members``; answers how many were new."""
        meta = self.collection(key, now, SET) or self.new_collection(key, SET)
        added = 0
        for member in dict.fromkeys(members):
            if self.get_row(meta, member) is None:
                self.put_row(meta, member, b"")
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
            if self.get_row(meta, member) is not None:
                self.del_row(meta, member)
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
        rng = random.Random(seed)
        popped: list[bytes] = []
        for _ in range(1 if count is None else count):
            # Each pick sees the rows deleted by the ones before it.
            bounds = self._set_bounds(meta, meta.count - len(popped))
            member = self._set_pick(meta, rng, bounds)
            self.del_row(meta, member)
            popped.append(member)
        self.save(key, meta.changed(meta.rev, count=meta.count - len(popped)))
        return (popped[0] if count is None else _res(popped)), []

    @read_op()
    def op_srandmember(self, now: int, key: bytes, count: int | None, seed: int) -> Applied:
        """A random member (``count`` None); ``count`` > 0 distinct ones;
        ``count`` < 0: ``-count`` picks, repeats allowed."""
        meta = self.collection(key, now, SET)
        if meta is None or count == 0:
            return (None if count is None else []), []
        rng = random.Random(seed)
        bounds = self._set_bounds(meta, meta.count)
        if count is None:
            return self._set_pick(meta, rng, bounds), []
        if count < 0:
            return _res(self._set_pick(meta, rng, bounds) for _ in range(-count)), []
        if count >= meta.count:
            return _res(self._set_members(meta)), []
        if count * 3 > meta.count:
            # Most of the set is wanted: reading it all is what Redis does too.
            return _res(rng.sample(self._set_members(meta), count)), []
        chosen: dict[bytes, None] = {}
        while len(chosen) < count:
            chosen[self._set_fresh(meta, self._set_pick(meta, rng, bounds), chosen)] = None
        return _res(chosen), []

    def _set_fresh(self, meta: Meta, member: bytes, chosen: dict[bytes, None]) -> bytes:
        """``member``, or the next member after it (wrapping) not yet chosen."""
        if member not in chosen:
            return member
        for sub, _ in chain(self.rows(meta, start=member), self.rows(meta, stop=member)):
            if sub not in chosen:
                return sub
        return member  # not reached: fewer members are chosen than exist

    @read_op()
    def op_sscan(self, now: int, key: bytes, start: bytes, options: list[bytes]) -> Applied:
        """``[cursor, members]``: up to COUNT members from ``start`` (the
        options are checked here: Redis checks them only for a set)."""
        meta = self.collection(key, now, SET)
        if meta is None:
            return [b"0", []], []
        cursor, found = scan_page(self.rows(meta, start), start, *scan_options(options))
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
        self.del_row(source, member)
        self.save(src, source.changed(source.rev, count=source.count - 1))
        target = target or self.new_collection(dst, SET)
        if self.get_row(target, member) is None:
            self.put_row(target, member, b"")
            self.save(dst, target.changed(target.rev, count=target.count + 1))
        return 1, []


def _res(members: Iterable[bytes]) -> Result:
    """``members`` as an operation's result."""
    out: list[Result] = list(members)
    return out
