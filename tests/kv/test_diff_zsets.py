"""Sorted set commands against a real redis-server (RESP2 and RESP3)."""

from __future__ import annotations

import time

from tests.differential import DifferentialCase


class ZSetTests(DifferentialCase):
    def setup_zset(self) -> tuple[str, str]:
        z, s = self.key("z"), self.key("s")
        self.check(
            ("ZADD", z, "1", "a", "2", "b", "2", "c", "3.5", "d", "-1e20", "e", "inf", "f"),
            ("SET", s, "x"),
        )
        return z, s

    def test_zadd_and_scores(self) -> None:
        z, s = self.key("z"), self.key("s")
        self.check(
            ("ZADD", z, "1.1", "a", "1e20", "b", "3", "c", "inf", "d", "-0", "e", "0.1", "f"),
            ("ZSCORE", z, "a"),
            ("ZSCORE", z, "b"),
            ("ZSCORE", z, "c"),
            ("ZSCORE", z, "d"),
            ("ZSCORE", z, "e"),
            ("ZSCORE", z, "f"),
            ("ZSCORE", z, "nope"),
            ("ZSCORE", self.key(), "a"),
            ("ZMSCORE", z, "a", "nope", "c"),
            ("ZMSCORE", self.key(), "a", "b"),
            ("ZCARD", z),
            ("ZCARD", self.key()),
            ("ZADD", z, "2", "a", "5", "new"),
            ("ZADD", z, "CH", "3", "a", "5", "new", "6", "new2"),
            ("ZADD", z, "NX", "100", "a", "7", "nx"),
            ("ZADD", z, "XX", "100", "a", "7", "xx"),
            ("ZADD", z, "XX", "CH", "101", "a", "7", "xx"),
            ("ZADD", z, "GT", "CH", "50", "a", "200", "c", "9", "gt"),
            ("ZADD", z, "LT", "CH", "50", "a", "200", "c"),
            ("ZADD", z, "INCR", "5", "a"),
            ("ZADD", z, "INCR", "5", "fresh"),
            ("ZADD", z, "NX", "INCR", "5", "a"),
            ("ZADD", z, "XX", "INCR", "5", "absent"),
            ("ZADD", z, "GT", "INCR", "-5", "a"),
            ("ZADD", z, "LT", "INCR", "-5", "a"),
            ("ZADD", z, "incr", "0", "a"),
            ("ZINCRBY", z, "2.5", "a"),
            ("ZINCRBY", z, "-1", "brand"),
            ("ZINCRBY", z, "abc", "a"),
            ("ZINCRBY", z, "inf", "d"),
            ("ZINCRBY", z, "-inf", "d"),
            ("ZADD", z, "INCR", "-inf", "d"),
            ("ZADD", z, "XX", "1", "a", "1", "b"),
            ("ZRANGE", z, "0", "-1", "WITHSCORES"),
            ("ZCARD", z),
            ("ZADD", self.key(), "XX", "1", "a"),
            ("ZADD", self.key(), "XX", "INCR", "1", "a"),
        )
        self.check(("SET", s, "x"), ("ZADD", s, "1", "a"), ("ZSCORE", s, "a"), ("ZCARD", s))

    def test_zadd_errors(self) -> None:
        z = self.key()
        self.check(
            ("ZADD", z),
            ("ZADD", z, "1"),
            ("ZADD", z, "1", "a", "2"),
            ("ZADD", z, "NX", "XX", "1", "a"),
            ("ZADD", z, "NX", "GT", "1", "a"),
            ("ZADD", z, "LT", "GT", "1", "a"),
            ("ZADD", z, "NX", "XX", "1", "a", "2"),
            ("ZADD", z, "INCR", "1", "a", "2", "b"),
            ("ZADD", z, "INCR", "NX", "XX", "1", "a", "2", "b"),
            ("ZADD", z, "abc", "a"),
            ("ZADD", z, "nan", "a"),
            ("ZADD", z, "1_0", "a"),
            ("ZADD", z, " 1", "a"),
            ("ZADD", z, "1e400", "a"),
            ("ZADD", z, "foo", "1", "a"),
            ("ZADD", z, "1", "a", "x", "b"),
            ("ZINCRBY", z, "1"),
            ("ZSCORE", z),
            ("ZMSCORE", z),
            ("ZCARD", z, "x"),
            ("EXISTS", z),
            ("ZADD", z, "+inf", "a", "-inf", "b", "1e5", "c", "-.5", "d", "0x10", "e"),
            ("ZADD", z, "-0x1.8p3", "f", "0x", "g"),
            ("ZADD", z, "0x1p99999", "g"),
            ("ZADD", z, "infinity", "g", "-Infinity", "h", "1.", "i", "+5", "j"),
            ("ZRANGE", z, "0", "-1", "WITHSCORES"),
            ("ZCOUNT", z, " 1", "1e400"),
            ("ZCOUNT", z, "1 ", "2"),
        )

    def test_zrem(self) -> None:
        z, s = self.setup_zset()
        self.check(
            ("ZREM", z, "a", "a", "nope", "b"),
            ("ZREM", self.key(), "a"),
            ("ZREM", s, "a"),
            ("ZREM", z),
            ("ZREM", z, "c", "d", "e", "f"),
            ("EXISTS", z),
            ("ZCARD", z),
        )

    def test_ranks_and_ranges_by_rank(self) -> None:
        z, s = self.setup_zset()
        self.check(
            ("ZRANK", z, "a"),
            ("ZRANK", z, "c"),
            ("ZRANK", z, "f"),
            ("ZRANK", z, "nope"),
            ("ZRANK", self.key(), "a"),
            ("ZREVRANK", z, "a"),
            ("ZREVRANK", z, "e"),
            ("ZREVRANK", z, "nope"),
            ("ZRANK", z, "a", "WITHSCORE"),
            ("ZRANK", s, "a"),
            ("ZRANGE", z, "0", "-1"),
            ("ZRANGE", z, "0", "-1", "WITHSCORES"),
            ("ZRANGE", z, "1", "2", "withscores", "withscores"),
            ("ZRANGE", z, "-2", "-1"),
            ("ZRANGE", z, "-100", "100"),
            ("ZRANGE", z, "3", "1"),
            ("ZRANGE", z, "10", "20"),
            ("ZRANGE", z, "0", "-1", "REV"),
            ("ZRANGE", z, "0", "1", "REV", "WITHSCORES"),
            ("ZREVRANGE", z, "0", "-1"),
            ("ZREVRANGE", z, "1", "3", "WITHSCORES"),
            ("ZREVRANGE", z, "0", "1", "REV"),
            ("ZREVRANGE", z, "0", "1", "LIMIT", "0", "1"),
            ("ZRANGE", self.key(), "0", "-1"),
            ("ZRANGE", s, "0", "-1"),
            ("ZRANGE", z, "x", "1"),
            ("ZRANGE", z, "0", "-1", "foo"),
            ("ZRANGE", z, "0", "-1", "LIMIT", "0", "1"),
            ("ZRANGE", z, "0"),
        )

    def test_ranges_by_score(self) -> None:
        z, s = self.setup_zset()
        self.check(
            ("ZRANGEBYSCORE", z, "-inf", "+inf"),
            ("ZRANGEBYSCORE", z, "-inf", "+inf", "WITHSCORES"),
            ("ZRANGEBYSCORE", z, "1", "2"),
            ("ZRANGEBYSCORE", z, "(1", "2"),
            ("ZRANGEBYSCORE", z, "(1", "(2"),
            ("ZRANGEBYSCORE", z, "2", "1"),
            ("ZRANGEBYSCORE", z, "-inf", "inf", "LIMIT", "1", "2"),
            ("ZRANGEBYSCORE", z, "-inf", "inf", "LIMIT", "1", "-1", "WITHSCORES"),
            ("ZRANGEBYSCORE", z, "-inf", "inf", "LIMIT", "-1", "2"),
            ("ZRANGEBYSCORE", z, "-inf", "inf", "LIMIT", "10", "2"),
            ("ZRANGEBYSCORE", z, "a", "1"),
            ("ZRANGEBYSCORE", z, "1", "(x"),
            ("ZRANGEBYSCORE", z, "1", "nan"),
            ("ZRANGEBYSCORE", z, "0", "1", "LIMIT", "0"),
            ("ZRANGEBYSCORE", z, "0", "1", "LIMIT", "x", "1"),
            ("ZRANGEBYSCORE", z, "0", "1", "BYSCORE"),
            ("ZRANGEBYSCORE", z, "0", "1", "REV"),
            ("ZREVRANGEBYSCORE", z, "+inf", "-inf"),
            ("ZREVRANGEBYSCORE", z, "2", "(1", "WITHSCORES"),
            ("ZREVRANGEBYSCORE", z, "(2", "1"),
            ("ZREVRANGEBYSCORE", z, "inf", "-inf", "LIMIT", "1", "3"),
            ("ZRANGE", z, "1", "3.5", "BYSCORE"),
            ("ZRANGE", z, "(1", "+inf", "BYSCORE", "LIMIT", "0", "2", "WITHSCORES"),
            ("ZRANGE", z, "+inf", "(1", "BYSCORE", "REV"),
            ("ZRANGE", z, "3.5", "2", "BYSCORE", "REV", "LIMIT", "1", "5"),
            ("ZRANGE", z, "0", "-1", "BYSCORE", "BYLEX"),
            ("ZRANGE", z, "a", "b", "BYSCORE"),
            ("ZRANGE", self.key(), "0", "1", "BYSCORE"),
            ("ZRANGEBYSCORE", s, "0", "1"),
            ("ZRANGEBYSCORE", z, "0"),
            ("ZCOUNT", z, "-inf", "+inf"),
            ("ZCOUNT", z, "(1", "2"),
            ("ZCOUNT", z, "2", "2"),
            ("ZCOUNT", z, "3", "1"),
            ("ZCOUNT", z, "a", "1"),
            ("ZCOUNT", self.key(), "0", "1"),
            ("ZCOUNT", s, "0", "1"),
            ("ZCOUNT", z, "0"),
        )

    def test_ranges_by_lex(self) -> None:
        z, s = self.key("z"), self.key("s")
        self.check(
            ("ZADD", z, "0", "a", "0", "b", "0", "c", "0", "dd", "0", "e", "0", "\xff"),
            ("SET", s, "x"),
            ("ZRANGEBYLEX", z, "-", "+"),
            ("ZRANGEBYLEX", z, "[b", "[d"),
            ("ZRANGEBYLEX", z, "(b", "(dd"),
            ("ZRANGEBYLEX", z, "[b", "(b"),
            ("ZRANGEBYLEX", z, "+", "-"),
            ("ZRANGEBYLEX", z, "-", "[c", "LIMIT", "1", "1"),
            ("ZRANGEBYLEX", z, "[c", "+", "LIMIT", "0", "-1"),
            ("ZRANGEBYLEX", z, "-", "+", "WITHSCORES"),
            ("ZRANGEBYLEX", z, "a", "+"),
            ("ZRANGEBYLEX", z, "-", "c"),
            ("ZREVRANGEBYLEX", z, "+", "-"),
            ("ZREVRANGEBYLEX", z, "[dd", "(a"),
            ("ZREVRANGEBYLEX", z, "(dd", "-", "LIMIT", "1", "2"),
            ("ZRANGE", z, "[b", "[e", "BYLEX"),
            ("ZRANGE", z, "[e", "[b", "BYLEX", "REV", "LIMIT", "1", "2"),
            ("ZRANGE", z, "[b", "[e", "BYLEX", "WITHSCORES"),
            ("ZRANGE", z, "b", "[e", "BYLEX"),
            ("ZLEXCOUNT", z, "-", "+"),
            ("ZLEXCOUNT", z, "(a", "[dd"),
            ("ZLEXCOUNT", z, "+", "-"),
            ("ZLEXCOUNT", z, "1", "2"),
            ("ZLEXCOUNT", self.key(), "-", "+"),
            ("ZLEXCOUNT", s, "-", "+"),
            ("ZRANGEBYLEX", s, "-", "+"),
        )

    def test_remove_ranges(self) -> None:
        z, s = self.setup_zset()
        self.check(
            ("ZREMRANGEBYRANK", z, "0", "0"),
            ("ZREMRANGEBYRANK", z, "-1", "-1"),
            ("ZREMRANGEBYRANK", z, "5", "10"),
            ("ZRANGE", z, "0", "-1", "WITHSCORES"),
            ("ZREMRANGEBYSCORE", z, "(1", "2"),
            ("ZREMRANGEBYSCORE", z, "x", "2"),
            ("ZREMRANGEBYRANK", z, "a", "1"),
            ("ZRANGE", z, "0", "-1", "WITHSCORES"),
            ("ZREMRANGEBYSCORE", z, "-inf", "+inf"),
            ("EXISTS", z),
            ("ZREMRANGEBYRANK", s, "0", "1"),
            ("ZREMRANGEBYSCORE", self.key(), "0", "1"),
            ("ZREMRANGEBYLEX", self.key(), "-", "+"),
            ("ZREMRANGEBYRANK", z, "0"),
        )
        lex = self.key()
        self.check(
            ("ZADD", lex, "0", "a", "0", "b", "0", "c", "0", "d"),
            ("ZREMRANGEBYLEX", lex, "(a", "[c"),
            ("ZREMRANGEBYLEX", lex, "x", "[c"),
            ("ZRANGE", lex, "0", "-1"),
            ("ZREMRANGEBYLEX", lex, "-", "+"),
            ("EXISTS", lex),
        )

    def test_pops(self) -> None:
        z, s = self.setup_zset()
        self.check(
            ("ZPOPMIN", z),
            ("ZPOPMAX", z),
            ("ZPOPMIN", z, "2"),
            ("ZPOPMAX", z, "1"),
            ("ZPOPMIN", z, "0"),
            ("ZPOPMIN", z, "-1"),
            ("ZPOPMIN", z, "abc"),
            ("ZPOPMIN", z, "1", "2"),
            ("ZPOPMAX", z, "10"),
            ("EXISTS", z),
            ("ZPOPMIN", z),
            ("ZPOPMIN", z, "3"),
            ("ZPOPMIN", s),
            ("ZPOPMAX", s, "1"),
            ("ZPOPMIN",),
        )

    def test_wrong_arity(self) -> None:
        z = self.key()
        for cmd in ("ZRANK", "ZREVRANK", "ZCOUNT", "ZLEXCOUNT", "ZREMRANGEBYSCORE"):
            self.check((cmd, z), (cmd, z, "a", "b", "c", "d"))
        self.check(
            ("ZRANGESTORE", z, "a", "0"),
            ("ZUNIONSTORE", z, "1"),
            ("ZINTERSTORE", z),
            ("ZSCAN", z),
            ("ZCARD",),
        )

    def test_rangestore(self) -> None:
        z, s = self.setup_zset()
        d = self.key("d")
        self.check(
            ("ZRANGESTORE", d, z, "0", "2"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZRANGESTORE", d, z, "(1", "+inf", "BYSCORE", "LIMIT", "0", "2"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZRANGESTORE", d, z, "+inf", "2", "BYSCORE", "REV"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZRANGESTORE", d, z, "0", "-1", "REV"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZRANGESTORE", d, z, "0", "-1", "WITHSCORES"),
            ("ZRANGESTORE", d, z, "[a", "+", "BYLEX"),
            ("ZRANGESTORE", d, z, "5", "6"),
            ("EXISTS", d),
            ("ZRANGESTORE", d, self.key(), "0", "-1"),
            ("ZRANGESTORE", d, s, "0", "-1"),
            ("ZRANGESTORE", s, z, "0", "0"),
            ("TYPE", s),
            ("ZRANGESTORE", z, z, "1", "2"),
            ("ZRANGE", z, "0", "-1", "WITHSCORES"),
        )

    def test_store_from_sets(self) -> None:
        a, b, st, d = self.key("a"), self.key("b"), self.key("s"), self.key("d")
        self.check(
            ("ZADD", a, "1", "x", "2", "y", "3", "z"),
            ("ZADD", b, "10", "y", "20", "z", "30", "w", "inf", "i"),
            ("SADD", st, "x", "w"),
            ("ZUNIONSTORE", d, "3", a, b, st),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZINTERSTORE", d, "2", a, st, "WEIGHTS", "1", "5"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZINTERSTORE", d, "2", st, st, "AGGREGATE", "MAX"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
        )

    def test_union_and_inter_store(self) -> None:
        a, b, st, d = self.key("a"), self.key("b"), self.key("s"), self.key("d")
        self.check(
            ("ZADD", a, "1", "x", "2", "y", "3", "z"),
            ("ZADD", b, "10", "y", "20", "z", "30", "w", "inf", "i"),
            ("ZUNIONSTORE", d, "2", a, b),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZINTERSTORE", d, "2", a, b),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZUNIONSTORE", d, "2", a, b, "WEIGHTS", "2", "0.5"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZUNIONSTORE", d, "2", a, b, "AGGREGATE", "MIN"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZINTERSTORE", d, "2", a, b, "aggregate", "max", "weights", "1", "-1"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZUNIONSTORE", d, "2", b, a, "WEIGHTS", "0", "1"),
            ("ZRANGE", d, "0", "-1", "WITHSCORES"),
            ("ZINTERSTORE", d, "2", a, self.key()),
            ("EXISTS", d),
            ("ZUNIONSTORE", d, "1", self.key()),
            ("ZUNIONSTORE", a, "2", a, b),
            ("ZRANGE", a, "0", "-1", "WITHSCORES"),
            ("ZUNIONSTORE", d, "0", a),
            ("ZUNIONSTORE", d, "-1", a),
            ("ZUNIONSTORE", d, "x", a),
            ("ZUNIONSTORE", d, "3", a, b),
            ("ZUNIONSTORE", d, "1", a, "WEIGHTS", "x"),
            ("ZUNIONSTORE", d, "1", a, "WEIGHTS", "1", "2"),
            ("ZUNIONSTORE", d, "1", a, "AGGREGATE", "avg"),
            ("ZUNIONSTORE", d, "1", a, "AGGREGATE"),
            ("ZUNIONSTORE", d, "1", a, "WITHSCORES"),
            ("ZINTERSTORE", d, "0", a),
        )
        self.check(
            ("SET", st, "v"),
            ("ZUNIONSTORE", d, "2", a, st),
            ("ZINTERSTORE", d, "1", st),
            ("ZINTERSTORE", d, "2", self.key(), st),
            ("ZUNIONSTORE", d, "2", a, st, "WEIGHTS", "x", "1"),
            ("ZUNIONSTORE", d, "2", a, st, "foo"),
            ("ZUNIONSTORE", d, "3", a, st),
            ("ZUNIONSTORE", st, "1", a),
            ("TYPE", st),
            ("ZRANGE", st, "0", "-1", "WITHSCORES"),
        )

    def test_misc_zadd(self) -> None:
        z, s = self.key(), self.key()
        self.check(
            ("ZADD", z, "GT", "5", "new"),
            ("ZADD", z, "LT", "CH", "5", "new2"),
            ("ZADD", z, "1", "dup", "2", "dup"),
            ("ZADD", z, "CH", "INCR", "1", "dup"),
            ("ZADD", z, "CH", "3", "dup", "3", "dup"),
            ("ZRANGE", z, "0", "-1", "WITHSCORES"),
            ("ZADD", z, "1", ""),
            ("ZSCORE", z, ""),
            ("ZRANGEBYLEX", z, "[", "+"),
            ("SET", s, "v"),
            ("ZINCRBY", s, "1", "a"),
            ("ZMSCORE", s, "a"),
            ("ZRANGESTORE", s, z, "0", "0"),
            ("ZRANGE", s, "0", "-1"),
        )

    def test_expired_zset(self) -> None:
        z = self.key()
        # Once per server (check would run them again after the deadline).
        self.assertEqual(*self.both("ZADD", z, "1", "a", "2", "b"))
        self.assertEqual(*self.both("PEXPIRE", z, "1"))
        time.sleep(0.05)
        self.check(("ZCARD", z), ("ZSCORE", z, "a"), ("ZRANGE", z, "0", "-1"), ("ZRANK", z, "a"))
        self.check(("ZADD", z, "INCR", "1", "x"), ("ZRANGE", z, "0", "-1", "WITHSCORES"))

    def test_zscan(self) -> None:
        z, s = self.setup_zset()
        self.check(
            ("ZSCAN", z, "0"),
            ("ZSCAN", z, "0", "MATCH", "[a-c]"),
            ("ZSCAN", z, "0", "COUNT", "2"),
            ("ZSCAN", z, "0", "COUNT", "0"),
            ("ZSCAN", z, "0", "COUNT", "x"),
            ("ZSCAN", z, "0", "foo"),
            ("ZSCAN", z, "0", "MATCH"),
            ("ZSCAN", z, "x"),
            ("ZSCAN", z, "-1"),
            ("ZSCAN", z, "+5"),
            ("ZSCAN", z, "0x5"),
            ("ZSCAN", z, "18446744073709551615"),
            ("ZSCAN", z, "18446744073709551616"),
            ("ZCOUNT", z, "0x1", "0x1p99999"),
            ("ZSCAN", self.key(), "0"),
            ("ZSCAN", self.key(), "0", "foo"),
            ("ZSCAN", s, "0"),
        )

    def test_big_zset_scan_and_ranks(self) -> None:
        z = self.key()
        args: list[str] = []
        for i in range(300):
            args += [str(i % 17), f"m{i:03d}"]
        self.check(
            ("ZADD", z, *args),
            ("ZCARD", z),
            ("ZRANK", z, "m150"),
            ("ZREVRANK", z, "m150"),
            ("ZRANGE", z, "100", "105", "WITHSCORES"),
            ("ZCOUNT", z, "3", "(5"),
        )
        for proto in (2, 3):
            conn = self.conns[("eraft", proto)]
            cursor, seen = b"0", set[bytes]()
            while True:
                reply = conn.call("ZSCAN", z, cursor, "COUNT", "50")
                cursor = reply[1][0][1]
                seen.update(item[1] for item in reply[1][1][1][::2])
                if cursor == b"0":
                    break
            self.assertEqual(len(seen), 300)
