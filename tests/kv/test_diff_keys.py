"""Differential tests of the generic key commands (RENAME, COPY, TOUCH,
RANDOMKEY, and the type-agnostic ones on hashes) and the remaining string
commands (SETEX, GETEX, INCRBYFLOAT, GETRANGE, SETRANGE, MSETNX)."""

from __future__ import annotations

import random

from tests.differential import DifferentialCase, RawConnection


def _scan_all(conn: RawConnection, *args: str) -> list[bytes]:
    """Every key a full SCAN iteration with ``args`` returns, sorted."""
    cursor, keys = b"0", list[bytes]()
    while True:
        kind, (cur, found) = conn.call("SCAN", cursor, *args)
        assert kind == "*"
        cursor = cur[1]
        keys.extend(k[1] for k in found[1])
        if cursor == b"0":
            return sorted(set(keys))


class RenameCopyTests(DifferentialCase):
    def test_rename(self) -> None:
        a, b, h, x = self.key("a"), self.key("b"), self.key("h"), self.key("x")
        self.check(
            ("SET", a, "1", "EX", "100"),
            ("HSET", h, "f", "v", "g", "w"),
            ("RENAME", a, b),
            ("EXISTS", a),
            ("GET", b),
            ("TTL", b),
            ("RENAME", b, h),
            ("TYPE", h),
            ("GET", h),
            ("TTL", h),
            ("RENAME", h, h),
            ("RENAME", x, x),
            ("RENAME", x, a),
            ("RENAME", a),
            ("RENAME", a, b, x),
        )

    def test_rename_a_hash(self) -> None:
        h, g, s = self.key("h"), self.key("g"), self.key("s")
        self.check(
            ("DEL", g),
            ("HSET", h, "f", "v", "g", "w"),
            ("EXPIRE", h, "100"),
            ("SET", s, "x"),
            ("RENAME", h, g),
            ("HGETALL", g),
            ("HGETALL", h),
            ("TTL", g),
            ("HSET", g, "z", "1"),
            ("HLEN", g),
            ("RENAMENX", g, s),
            ("RENAME", g, s),
            ("HGETALL", s),
            ("TYPE", g),
            ("TTL", s),
        )

    def test_renamenx(self) -> None:
        a, b, c = self.key("a"), self.key("b"), self.key("c")
        self.check(
            ("DEL", b),
            ("SET", a, "1"),
            ("SET", c, "3"),
            ("RENAMENX", a, c),
            ("RENAMENX", a, a),
            ("RENAMENX", a, b),
            ("GET", b),
            ("RENAMENX", a, b),
            ("RENAMENX", b, a),
            ("RENAMENX", a),
        )

    def test_copy(self) -> None:
        a, b, h, x = self.key("a"), self.key("b"), self.key("h"), self.key("x")
        self.check(
            ("DEL", b),
            ("SET", a, "1", "EX", "100"),
            ("COPY", a, b),
            ("GET", b),
            ("TTL", b),
            ("COPY", a, b),
            ("SET", a, "2"),
            ("COPY", a, b, "REPLACE"),
            ("GET", b),
            ("TTL", b),
            ("COPY", a, b, "DB", "0", "replace", "replace"),
            ("COPY", x, b),
            ("COPY", x, b, "REPLACE"),
            ("COPY", a, a),
            ("COPY", x, x),
            ("COPY", a, b, "DB", "16"),
            ("COPY", a, b, "DB", "-1"),
            ("COPY", a, b, "DB", "x"),
            ("COPY", a, b, "DB"),
            ("COPY", a, b, "FOO"),
            ("COPY", a),
            ("HSET", h, "f", "v"),
            ("COPY", h, a),
            ("COPY", h, a, "REPLACE"),
            ("TYPE", a),
            ("HGETALL", a),
        )

    def test_copy_a_hash(self) -> None:
        h, c = self.key("h"), self.key("c")
        self.check(
            ("DEL", c),
            ("HSET", h, "f", "v", "g", "w"),
            ("PEXPIRE", h, "100000"),
            ("COPY", h, c),
            ("HSET", c, "z", "1"),
            ("HDEL", c, "f"),
            ("HGETALL", h),
            ("HGETALL", c),
            ("HLEN", c),
            ("TTL", c),
            ("DEL", h),
            ("HGETALL", c),
            ("SET", h, "str"),
            ("COPY", h, c, "REPLACE"),
            ("GET", c),
            ("HGETALL", c),
        )

    def test_touch(self) -> None:
        a, h, x = self.key("a"), self.key("h"), self.key("x")
        self.check(
            ("SET", a, "1"),
            ("HSET", h, "f", "v"),
            ("TOUCH", a, h, x),
            ("TOUCH", a, a, x),
            ("TOUCH", x),
            ("TOUCH",),
        )

    def test_randomkey(self) -> None:
        a, h = self.key("a"), self.key("h")
        self.check(
            ("FLUSHALL",),
            ("RANDOMKEY",),
            ("SET", a, "1"),
            ("RANDOMKEY",),
            ("DEL", a),
            ("HSET", h, "f", "v"),
            ("RANDOMKEY",),
            ("RANDOMKEY", "x"),
        )
        self.check(("SET", a, "2", "PX", "1"))
        keys = [self.key("r") for _ in range(20)]
        for k in keys:
            self.check(("SET", k, "v"))
        for _ in range(20):
            theirs, ours = self.both("RANDOMKEY")
            self.assertIn(theirs[1].decode(), keys + [h])
            self.assertIn(ours[1].decode(), keys + [h])


class StringTests(DifferentialCase):
    def test_setex(self) -> None:
        k, h = self.key(), self.key("h")
        self.check(
            ("SETEX", k, "100", "v"),
            ("GET", k),
            ("TTL", k),
            ("PSETEX", k, "200000", "w"),
            ("GET", k),
            ("TTL", k),
            ("SETEX", k, "0", "v"),
            ("SETEX", k, "-1", "v"),
            ("SETEX", k, "abc", "v"),
            ("SETEX", k, "99999999999999999", "v"),
            ("SETEX", k, "9223372036854775807", "v"),
            ("PSETEX", k, "0", "v"),
            ("PSETEX", k, "9223372036854775807", "v"),
            ("PSETEX", k, "9223372036854775808", "v"),
            ("SETEX", k, "10"),
            ("PSETEX", k, "10", "v", "x"),
            ("HSET", h, "f", "v"),
            ("SETEX", h, "100", "s"),
            ("GET", h),
            ("TYPE", h),
        )

    def test_getex(self) -> None:
        k, h, x = self.key(), self.key("h"), self.key("x")
        self.check(
            ("SET", k, "v"),
            ("GETEX", k),
            ("TTL", k),
            ("GETEX", k, "EX", "100"),
            ("TTL", k),
            ("GETEX", k, "px", "200000"),
            ("TTL", k),
            ("GETEX", k, "EX", "10", "EX", "20"),
            ("TTL", k),
            ("GETEX", k, "PERSIST"),
            ("TTL", k),
            ("GETEX", k, "PERSIST", "PERSIST"),
            ("GETEX", k, "EXAT", "99999999999"),
            ("TTL", k),
            ("GETEX", k, "PXAT", "99999999999000"),
            ("GETEX", k, "EX"),
            ("GETEX", k, "EX", "0"),
            ("GETEX", k, "EX", "-5"),
            ("GETEX", k, "PX", "abc"),
            ("GETEX", k, "EX", "9223372036854775807"),
            ("GETEX", k, "PX", "9223372036854775807"),
            ("GETEX", k, "EX", "10", "PX", "10"),
            ("GETEX", k, "PERSIST", "EX", "10"),
            ("GETEX", k, "EX", "10", "PERSIST"),
            ("GETEX", k, "KEEPTTL"),
            ("GETEX", k, "NX"),
            ("GETEX", x, "EX", "0"),
            ("GETEX", x, "EX", "abc"),
            ("GETEX", x, "NX"),
            ("GETEX", k, "EXAT", "1"),
            ("EXISTS", k),
            ("HSET", h, "f", "v"),
            ("GETEX", h),
            ("GETEX", h, "EX", "abc"),
            ("GETEX", h, "FOO"),
            ("GETEX",),
        )

    def test_incrbyfloat(self) -> None:
        k, h, x = self.key(), self.key("h"), self.key("x")
        cases = [
            ("10.5", "0.1"),
            ("5.0e3", "0"),
            ("0", "1e30"),
            ("0", "-0.0"),
            ("0.1", "0.2"),
            ("3.0000000000000000001", "0"),
            ("1e20", "1.5"),
            ("+.5", "5."),
            ("0x10", "1"),
            ("-1.5", "1.5"),
            ("1", "-3.25"),
            ("123456789012345678", "1"),
            ("1e-300", "0"),
            ("1", "1e-17"),
        ]
        for start, incr in cases:
            self.check(("SET", k, start), ("INCRBYFLOAT", k, incr), ("GET", k))
        self.check(
            ("DEL", x),
            ("INCRBYFLOAT", x, "1.5"),
            ("INCRBYFLOAT", x, "abc"),
            ("INCRBYFLOAT", x, " 1"),
            ("INCRBYFLOAT", x, "1 "),
            ("INCRBYFLOAT", x, ""),
            ("INCRBYFLOAT", x, "inf"),
            ("INCRBYFLOAT", x, "-Infinity"),
            ("INCRBYFLOAT", x, "nan"),
            ("INCRBYFLOAT", x, "1e5000"),
            ("INCRBYFLOAT", x, "1e-5000"),
            ("INCRBYFLOAT", x, "1e4932"),
            ("INCRBYFLOAT", x, "1e4931"),
            ("INCRBYFLOAT", x, "1e4931"),
            ("SET", x, "abc"),
            ("INCRBYFLOAT", x, "1"),
            ("SET", x, "inf"),
            ("INCRBYFLOAT", x, "1"),
            ("INCRBYFLOAT", x, "abc"),
            ("SET", x, "1", "EX", "100"),
            ("INCRBYFLOAT", x, "2.5"),
            ("TTL", x),
            ("HSET", h, "f", "v"),
            ("INCRBYFLOAT", h, "1"),
            ("INCRBYFLOAT", h, "abc"),
            ("INCRBYFLOAT", x),
        )

    def test_incrbyfloat_random(self) -> None:
        k = self.key()
        rng = random.Random(12)

        def number() -> str:
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 22)))
            dot = rng.randint(0, len(digits))
            text = rng.choice(["", "-"]) + digits[:dot] + "." + digits[dot:]
            if rng.random() < 0.3:
                text += f"e{rng.randint(-40, 40)}"
            return text

        for _ in range(40):
            self.check(("SET", k, number()), ("INCRBYFLOAT", k, number()))

    def test_getrange(self) -> None:
        k, h, x = self.key(), self.key("h"), self.key("x")
        self.check(("SET", k, "Hello World"), ("HSET", h, "f", "v"), ("SET", x, ""))
        for start, end in [
            (0, 4),
            (-3, -1),
            (0, -1),
            (10, 100),
            (-100, 100),
            (5, 3),
            (-1, -2),
            (-1, -1),
            (11, 12),
            (0, 0),
            (-100, -50),
            (3, -100),
        ]:
            self.check(("GETRANGE", k, start, end), ("GETRANGE", x, start, end))
        self.check(
            ("GETRANGE", self.key("none"), 0, -1),
            ("GETRANGE", k, "a", 1),
            ("GETRANGE", k, 0, "b"),
            ("GETRANGE", h, 0, 1),
            ("GETRANGE", h, "x", 1),
            ("GETRANGE", k, 0),
        )

    def test_setrange(self) -> None:
        k, h, x = self.key(), self.key("h"), self.key("x")
        self.check(
            ("SET", k, "Hello World", "EX", "100"),
            ("SETRANGE", k, "6", "Redis"),
            ("GET", k),
            ("TTL", k),
            ("SETRANGE", k, "15", "!"),
            ("GET", k),
            ("SETRANGE", k, "0", ""),
            ("SETRANGE", k, "-1", "x"),
            ("SETRANGE", k, "abc", "x"),
            ("SETRANGE", k, "536870912", "x"),
            ("SETRANGE", k, "536870911", ""),
            ("DEL", x),
            ("SETRANGE", x, "0", ""),
            ("EXISTS", x),
            ("SETRANGE", x, "3", "ab"),
            ("GET", x),
            ("SETRANGE", x, "536870912", "x"),
            ("HSET", h, "f", "v"),
            ("SETRANGE", h, "0", "x"),
            ("SETRANGE", h, "0", ""),
            ("SETRANGE", h, "-1", "x"),
            ("SETRANGE", k, "0"),
        )

    def test_msetnx(self) -> None:
        a, b, c, h = self.key("a"), self.key("b"), self.key("c"), self.key("h")
        self.check(
            ("DEL", a, b, c),
            ("MSETNX", a, "1", b, "2"),
            ("MGET", a, b),
            ("MSETNX", c, "3", a, "x"),
            ("EXISTS", c),
            ("DEL", a, b, c),
            ("MSETNX", a, "1", a, "2"),
            ("GET", a),
            ("HSET", h, "f", "v"),
            ("MSETNX", c, "3", h, "x"),
            ("MSETNX", a),
            ("MSETNX", a, "1", b),
            ("MSETNX",),
        )


class AnyTypeTests(DifferentialCase):
    def test_hash_ttl_type_del(self) -> None:
        h, x = self.key("h"), self.key("x")
        self.check(
            ("HSET", h, "f", "v"),
            ("TYPE", h),
            ("TTL", h),
            ("EXPIRE", h, "100"),
            ("TTL", h),
            ("EXPIRE", h, "50", "GT"),
            ("EXPIRE", h, "200", "GT"),
            ("TTL", h),
            ("EXPIRE", h, "10", "NX"),
            ("PERSIST", h),
            ("TTL", h),
            ("PERSIST", h),
            ("EXPIRE", h, "100", "XX"),
            ("EXISTS", h, x, h),
            ("DEL", h, x),
            ("TYPE", h),
            ("TTL", h),
            ("HGETALL", h),
            ("HSET", h, "g", "w"),
            ("EXPIRE", h, "0"),
            ("EXISTS", h),
            ("HGETALL", h),
        )

    def test_hash_pexpireat_in_the_past(self) -> None:
        h = self.key("h")
        self.check(
            ("HSET", h, "f", "v"),
            ("PEXPIREAT", h, "1"),
            ("TYPE", h),
            ("HLEN", h),
            ("HSET", h, "f", "v"),
            ("HLEN", h),
        )

    def test_scan_by_type_and_dbsize(self) -> None:
        prefix = self.key("scan")
        strings = [f"{prefix}:s{i}" for i in range(7)]
        hashes = [f"{prefix}:h{i}" for i in range(5)]
        before = self.both("DBSIZE")
        for k in strings:
            self.check(("SET", k, "v"))
        for k in hashes:
            self.check(("HSET", k, "f", "v"))
        after = self.both("DBSIZE")
        self.assertEqual(after[0][1] - before[0][1], 12)
        self.assertEqual(after[1][1] - before[1][1], 12)
        for kind, expected in (("string", strings), ("hash", hashes), ("list", [])):
            want = sorted(k.encode() for k in expected)
            for conn in (self.conns[("redis", 2)], self.conns[("eraft", 2)]):
                got = _scan_all(conn, "MATCH", prefix + ":*", "COUNT", "3", "TYPE", kind)
                self.assertEqual(got, want)
        everything = sorted(k.encode() for k in strings + hashes)
        for conn in (self.conns[("redis", 3)], self.conns[("eraft", 3)]):
            self.assertEqual(_scan_all(conn, "MATCH", prefix + ":*"), everything)
        self.check(("DEL", *hashes), ("EXISTS", *hashes))
        for conn in (self.conns[("redis", 2)], self.conns[("eraft", 2)]):
            got = _scan_all(conn, "MATCH", prefix + ":*", "TYPE", "HASH")
            self.assertEqual(got, [])


class KeyPatternTests(DifferentialCase):
    def test_keys_and_scan_match_use_redis_glob_rules(self) -> None:
        p = self.key("pat")
        names = ["a", "b", "z", "ab", "a*b", "[x", "a\\b", "", "Ab"]
        for name in names:
            self.both("SET", f"{p}{name}", "1")
        for pattern in ("*", "[z-a]", "[a-z]", "[^a]", "\\*", "a\\*b", "[x", "?b", "[", "[!a]"):
            theirs, ours = self.both("KEYS", f"{p}{pattern}")
            self.assertEqual(sorted(ours[1]), sorted(theirs[1]), pattern)
