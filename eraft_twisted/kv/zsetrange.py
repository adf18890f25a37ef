"""Sorted set encoding and the read operations over ranges (by rank,
score or lex order); the writes are in :mod:`.zsets`.

Per member a row ``b'm' + member`` -> score (``>d``), and an index row
``b's' + sortable(score) + member`` -> ``b''`` whose byte order is
(score, member) order, so ranges by score or rank are one ordered scan.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from ..storage import layout
from .collection import DataOps, read_op
from .records import KeyType, Meta
from .results import Applied, Result

ZSET = KeyType.ZSET
_D = struct.Struct(">d")
_Q = struct.Struct(">Q")
_SIGN = 1 << 63
_ALL = (1 << 64) - 1

ScoreRange = list[object]
"""``[min, min exclusive, max, max exclusive]``."""
LexRange = list[object]
"""``[min inf, min, min inclusive, max inf, max, max inclusive]``: inf is
-1 for ``-``, 1 for ``+``, 0 for a member bound."""


def pack_score(score: float) -> bytes:
    return _D.pack(score)


def unpack_score(value: bytes) -> float:
    return float(_D.unpack(value)[0])


def sortable(score: float) -> bytes:
    """8 bytes whose byte order is the numeric order of scores."""
    bits = _Q.unpack(_D.pack(score + 0.0))[0]
    return _Q.pack(bits ^ _ALL if bits & _SIGN else bits | _SIGN)


def unsortable(data: bytes) -> float:
    bits = _Q.unpack(data)[0]
    return float(_D.unpack(_Q.pack(bits ^ _SIGN if bits & _SIGN else bits ^ _ALL))[0])


def index_sub(score: float, member: bytes) -> bytes:
    return b"s" + sortable(score) + member


def _after(prefix: bytes) -> bytes:
    return layout.prefix_stop(prefix)


def in_min(score: float, rng: ScoreRange) -> bool:
    lo = float(rng[0])  # type: ignore[arg-type]
    return score > lo or (not rng[1] and score == lo)


def in_max(score: float, rng: ScoreRange) -> bool:
    hi = float(rng[2])  # type: ignore[arg-type]
    return score < hi or (not rng[3] and score == hi)


def lex_min_ok(member: bytes, rng: LexRange) -> bool:
    inf, value, incl = rng[0], rng[1], rng[2]
    if inf:
        return inf == -1
    assert isinstance(value, bytes)
    return member > value or (bool(incl) and member == value)


def lex_max_ok(member: bytes, rng: LexRange) -> bool:
    inf, value, incl = rng[3], rng[4], rng[5]
    if inf:
        return inf == 1
    assert isinstance(value, bytes)
    return member < value or (bool(incl) and member == value)


class ZSetRangeOps(DataOps):
    """The sorted set reads: scores, ranks and ranges."""

    # -- scans ---------------------------------------------------------------
    def z_index(self, meta: Meta, reverse: bool = False) -> Iterator[tuple[bytes, float]]:
        """``(member, score)`` in (score, member) order."""
        for sub, _ in self.rows(meta, b"s", b"t", reverse):
            yield sub[9:], unsortable(sub[1:9])

    def z_by_score(
        self, meta: Meta, rng: ScoreRange, reverse: bool
    ) -> Iterator[tuple[bytes, float]]:
        if not reverse:
            start = b"s" + sortable(float(rng[0]))  # type: ignore[arg-type]
            for sub, _ in self.rows(meta, start, b"t"):
                score = unsortable(sub[1:9])
                if not in_min(score, rng):
                    continue
                if not in_max(score, rng):
                    return
                yield sub[9:], score
            return
        stop = _after(b"s" + sortable(float(rng[2])))  # type: ignore[arg-type]
        for sub, _ in self.rows(meta, b"s", stop, True):
            score = unsortable(sub[1:9])
            if not in_max(score, rng):
                continue
            if not in_min(score, rng):
                return
            yield sub[9:], score

    def z_by_lex(self, meta: Meta, rng: LexRange, reverse: bool) -> Iterator[tuple[bytes, float]]:
        # Lex ranges assume equal scores (as Redis documents): members in
        # byte order are then the set's order, and the member rows are.
        if not reverse:
            start = b"m" + rng[1] if rng[0] == 0 else b"m"  # type: ignore[operator]
            for sub, value in self.rows(meta, start, b"n"):
                member = sub[1:]
                if not lex_min_ok(member, rng):
                    continue
                if not lex_max_ok(member, rng):
                    return
                yield member, unpack_score(value)
            return
        stop = b"m" + rng[4] + b"\x00" if rng[3] == 0 else b"n"  # type: ignore[operator]
        for sub, value in self.rows(meta, b"m", stop, True):
            member = sub[1:]
            if not lex_max_ok(member, rng):
                continue
            if not lex_min_ok(member, rng):
                return
            yield member, unpack_score(value)

    def z_range(
        self,
        meta: Meta,
        how: bytes,
        lo: object,
        hi: object,
        rev: bool,
        offset: int,
        count: int,
    ) -> list[tuple[bytes, float]]:
        """The ``(member, score)`` a ZRANGE of ``how`` (rank/score/lex) selects."""
        if how == b"rank":
            assert isinstance(lo, int) and isinstance(hi, int)
            size = meta.count
            start = lo + size if lo < 0 else lo
            end = hi + size if hi < 0 else hi
            start = max(start, 0)
            end = min(end, size - 1)
            if start > end or start >= size:
                return []
            offset, count = start, end - start + 1
            it = self.z_index(meta, rev)
        elif how == b"score":
            it = self.z_by_score(meta, lo, rev)  # type: ignore[arg-type]
        else:
            it = self.z_by_lex(meta, lo, rev)  # type: ignore[arg-type]
        if offset < 0:
            return []
        out: list[tuple[bytes, float]] = []
        for i, item in enumerate(it):
            if i < offset:
                continue
            if 0 <= count <= len(out):
                break
            out.append(item)
        return out

    def z_score(self, meta: Meta, member: bytes) -> float | None:
        value = self.get_row(meta, b"m" + member)
        return None if value is None else unpack_score(value)

    # -- operations ------------------------------------------------------------
    @read_op()
    def op_zscore(self, now: int, key: bytes, member: bytes) -> Applied:
        meta = self.collection(key, now, ZSET)
        return (None if meta is None else self.z_score(meta, member)), []

    @read_op()
    def op_zmscore(self, now: int, key: bytes, members: list[bytes]) -> Applied:
        meta = self.collection(key, now, ZSET)
        if meta is None:
            return [None for _ in members], []
        return [self.z_score(meta, m) for m in members], []

    @read_op()
    def op_zcard(self, now: int, key: bytes) -> Applied:
        meta = self.collection(key, now, ZSET)
        return (0 if meta is None else meta.count), []

    @read_op()
    def op_zcount(self, now: int, key: bytes, rng: ScoreRange) -> Applied:
        meta = self.collection(key, now, ZSET)
        if meta is None:
            return 0, []
        return sum(1 for _ in self.z_by_score(meta, rng, False)), []

    @read_op()
    def op_zlexcount(self, now: int, key: bytes, rng: LexRange) -> Applied:
        meta = self.collection(key, now, ZSET)
        if meta is None:
            return 0, []
        return sum(1 for _ in self.z_by_lex(meta, rng, False)), []

    @read_op()
    def op_zrange(
        self,
        now: int,
        key: bytes,
        how: bytes,
        lo: object,
        hi: object,
        rev: bool,
        offset: int,
        count: int,
        withscores: bool,
    ) -> Applied:
        """ZRANGE and its older forms: ``[member, ...]`` or ``[member, score, ...]``."""
        meta = self.collection(key, now, ZSET)
        if meta is None:
            return [], []
        items = self.z_range(meta, how, lo, hi, rev, offset, count)
        out: list[Result] = []
        for member, score in items:
            out.append(member)
            if withscores:
                out.append(score)
        return out, []

    @read_op()
    def op_zrank(self, now: int, key: bytes, member: bytes, rev: bool) -> Applied:
        """The member's rank (O(rank): counted along the index)."""
        meta = self.collection(key, now, ZSET)
        if meta is None:
            return None, []
        score = self.z_score(meta, member)
        if score is None:
            return None, []
        target = index_sub(score, member)
        if rev:
            return sum(1 for _ in self.rows(meta, target + b"\x00", b"t")), []
        return sum(1 for _ in self.rows(meta, b"s", target)), []
