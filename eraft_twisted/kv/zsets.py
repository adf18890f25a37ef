"""Sorted set operations: per member a row ``b'm' + member`` -> score, and
an index row ``b's' + sortable score (8 bytes) + member`` -> empty, so
ranges by score are one ordered scan (reads in :mod:`.zsetrange`)."""

from __future__ import annotations

import math

from .collection import read_op, refuse, write_op
from .records import KeyType, Meta, record_type, unpack_meta
from .results import Applied, Result, WrongType
from .scanning import scan_options
from .zsetrange import ZSET, ZSetRangeOps, index_sub, pack_score, unpack_score

NX, XX, GT, LT, CH, INCR = 1, 2, 4, 8, 16, 32
"""ZADD's flags (bits of its ``flags`` argument)."""

SUM, MIN, MAX = 0, 1, 2
"""ZUNIONSTORE / ZINTERSTORE's AGGREGATE."""

SCAN_ALL = 128
"""Up to this many members a ZSCAN answers them all at once, as Redis's
compact encoding does."""

NAN_SCORE = "resulting score is not a number (NaN)"


class ZSetOps(ZSetRangeOps):
    """ZADD, ZREM, ZPOPMIN, ZUNIONSTORE ... as state machine operations."""

    def z_set(self, meta: Meta, member: bytes, old: float | None, score: float) -> None:
        """Give ``member`` (whose score was ``old``) the score ``score``."""
        score += 0.0
        if old is not None:
            self.del_row(meta, index_sub(old, member))
        self.put_row(meta, b"m" + member, pack_score(score))
        self.put_row(meta, index_sub(score, member), b"")

    def z_del(self, meta: Meta, member: bytes, score: float) -> None:
        self.del_row(meta, b"m" + member)
        self.del_row(meta, index_sub(score, member))

    @write_op()
    def op_zadd(self, now: int, key: bytes, flags: int, pairs: list[object]) -> Applied:
        """ZADD (``pairs`` = score, member, ...) and ZINCRBY (flag INCR)."""
        meta = self.collection(key, now, ZSET)
        if flags & INCR:
            incr, member = float(pairs[0]), pairs[1]  # type: ignore[arg-type]
            assert isinstance(member, bytes)
            old = None if meta is None else self.z_score(meta, member)
            if (old is None and flags & XX) or (old is not None and flags & NX):
                return None, []
            score = incr if old is None else old + incr
            if math.isnan(score):
                raise refuse(NAN_SCORE)
            if old is not None and ((flags & GT and score <= old) or (flags & LT and score >= old)):
                return None, []
            meta = meta or self.new_collection(key, ZSET)
            if old != score:
                self.z_set(meta, member, old, score)
            self.save(key, meta.changed(meta.rev, count=meta.count + (old is None)))
            return score + 0.0, []
        if meta is None and flags & XX:
            return 0, []
        meta = meta or self.new_collection(key, ZSET)
        added = changed = 0
        for i in range(0, len(pairs) - 1, 2):
            score, member = float(pairs[i]), pairs[i + 1]  # type: ignore[arg-type]
            assert isinstance(member, bytes)
            old = self.z_score(meta, member)
            if old is None:
                if flags & XX:
                    continue
                self.z_set(meta, member, None, score)
                added += 1
                continue
            if flags & NX or (flags & GT and score <= old) or (flags & LT and score >= old):
                continue
            if score != old:
                self.z_set(meta, member, old, score)
                changed += 1
        if added or changed:
            self.save(key, meta.changed(meta.rev, count=meta.count + added))
        return (added + changed if flags & CH else added), []

    @write_op()
    def op_zrem(self, now: int, key: bytes, members: list[bytes]) -> Applied:
        meta = self.collection(key, now, ZSET)
        if meta is None:
            return 0, []
        removed = 0
        for member in dict.fromkeys(members):
            score = self.z_score(meta, member)
            if score is not None:
                self.z_del(meta, member, score)
                removed += 1
        if removed:
            self.save(key, meta.changed(meta.rev, count=meta.count - removed))
        return removed, []

    def z_remove_all(self, key: bytes, meta: Meta, items: list[tuple[bytes, float]]) -> None:
        for member, score in items:
            self.z_del(meta, member, score)
        if items:
            self.save(key, meta.changed(meta.rev, count=meta.count - len(items)))

    @write_op()
    def op_zpop(self, now: int, key: bytes, count: int | None, highest: bool) -> Applied:
        """ZPOPMIN / ZPOPMAX: ``[[member, score], ...]``; without a
        ``count`` one flat ``[member, score]``."""
        meta = self.collection(key, now, ZSET)
        if meta is None or count == 0:
            return [], []
        items = []
        for item in self.z_index(meta, highest):
            items.append(item)
            if len(items) >= (count or 1):
                break
        self.z_remove_all(key, meta, items)
        if count is None:
            return [x for member, score in items for x in (member, score)], []
        return [[member, score] for member, score in items], []

    @write_op()
    def op_zremrange(self, now: int, key: bytes, how: bytes, lo: object, hi: object) -> Applied:
        """ZREMRANGEBYRANK / BYSCORE / BYLEX."""
        meta = self.collection(key, now, ZSET)
        if meta is None:
            return 0, []
        items = self.z_range(meta, how, lo, hi, False, 0, -1)
        self.z_remove_all(key, meta, items)
        return len(items), []

    def z_store(self, dst: bytes, items: list[tuple[bytes, float]]) -> int:
        """Replace ``dst`` by a sorted set of ``items`` (distinct members)."""
        meta = self.new_collection(dst, ZSET)
        for member, score in items:
            self.z_set(meta, member, None, score)
        self.save(dst, meta.changed(meta.rev, count=len(items)))
        return len(items)

    @write_op("list")
    def op_zrangestore(
        self,
        now: int,
        keys: list[bytes],
        how: bytes,
        lo: object,
        hi: object,
        rev: bool,
        offset: int,
        count: int,
    ) -> Applied:
        dst, src = keys
        meta = self.collection(src, now, ZSET)
        items = [] if meta is None else self.z_range(meta, how, lo, hi, rev, offset, count)
        return self.z_store(dst, items), []

    def z_source(self, key: bytes, now: int) -> Meta | None:
        """A ZUNIONSTORE source: a sorted set or a set (every score 1)."""
        record = self.live_record(key, now)
        if record is None:
            return None
        if record_type(record) not in (KeyType.ZSET, KeyType.SET):
            raise WrongType()
        return unpack_meta(record)

    def z_source_score(self, meta: Meta, member: bytes) -> float | None:
        if meta.type == KeyType.SET:
            return None if self.get_row(meta, b"m" + member) is None else 1.0
        return self.z_score(meta, member)

    def z_source_items(self, meta: Meta) -> list[tuple[bytes, float]]:
        if meta.type == KeyType.SET:
            return [(sub[1:], 1.0) for sub, _ in self.rows(meta, b"m", b"n")]
        return [(sub[1:], unpack_score(v)) for sub, v in self.rows(meta, b"m", b"n")]

    @write_op("list")
    def op_zstore(
        self,
        now: int,
        keys: list[bytes],
        inter: bool,
        weights: list[float],
        aggregate: int,
        error: bytes,
    ) -> Applied:
        """ZUNIONSTORE / ZINTERSTORE of ``keys[1:]`` into ``keys[0]``
        (``error``: a bad option, reported after the sources' types)."""
        dst, srcs = keys[0], keys[1:]
        metas = [self.z_source(k, now) for k in srcs]
        if error:
            raise refuse(error.decode())
        scores: dict[bytes, float] = {}
        if inter:
            if all(m is not None and m.count for m in metas):
                order = sorted(range(len(metas)), key=lambda i: metas[i].count)  # type: ignore[union-attr]
                first = order[0]
                for member, value in self.z_source_items(metas[first]):  # type: ignore[arg-type]
                    total = _weigh(value, weights[first])
                    for j in order[1:]:
                        other = self.z_source_score(metas[j], member)  # type: ignore[arg-type]
                        if other is None:
                            break
                        total = _aggregate(total, _weigh(other, weights[j]), aggregate)
                    else:
                        scores[member] = total
        else:
            for i, meta in enumerate(metas):
                if meta is None:
                    continue
                for member, value in self.z_source_items(meta):
                    w = _weigh(value, weights[i])
                    old = scores.get(member)
                    scores[member] = w if old is None else _aggregate(old, w, aggregate)
        return self.z_store(dst, list(scores.items())), []

    @read_op()
    def op_zscan(self, now: int, key: bytes, cursor: int, options: list[bytes]) -> Applied:
        """ZSCAN: the cursor counts members in member order (the options
        are checked here: Redis checks them only for a sorted set)."""
        meta = self.collection(key, now, ZSET)
        if meta is None:
            return [b"0", []], []
        count, glob = scan_options(options)
        out: list[Result] = []
        if meta.count <= SCAN_ALL:
            # Redis's compact encoding answers all, in the set's order.
            for member, score in self.z_index(meta):
                if glob is None or glob.match(member):
                    out += [member, score]
            return [b"0", out], []
        seen = nxt = 0
        for i, (sub, value) in enumerate(self.rows(meta, b"m", b"n")):
            if i < cursor:
                continue
            if seen >= count:
                nxt = i
                break
            seen += 1
            member = sub[1:]
            if glob is None or glob.match(member):
                out += [member, unpack_score(value)]
        return [str(nxt).encode(), out], []


def _weigh(value: float, weight: float) -> float:
    score = value * weight
    return 0.0 if math.isnan(score) else score


def _aggregate(a: float, b: float, how: int) -> float:
    if how == MIN:
        return min(a, b)
    if how == MAX:
        return max(a, b)
    total = a + b
    return 0.0 if math.isnan(total) else total
