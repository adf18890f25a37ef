"""Hash commands against a real redis-server (see :mod:`tests.differential`)."""

from __future__ import annotations

from tests.differential import DifferentialCase

ALL = (
    ("HSET", "f", "v"),
    ("HSETNX", "f", "v"),
    ("HMSET", "f", "v"),
    ("HGET", "f"),
    ("HMGET", "f", "g"),
    ("HDEL", "f"),
    ("HLEN",),
    ("HEXISTS", "f"),
    ("HGETALL",),
    ("HKEYS",),
    ("HVALS",),
    ("HINCRBY", "f", "1"),
    ("HINCRBYFLOAT", "f", "1.5"),
    ("HSTRLEN", "f"),
    ("HSCAN", "0"),
    ("HRANDFIELD",),
    ("HRANDFIELD", "2"),
    ("HRANDFIELD", "-2", "WITHVALUES"),
)


def _flat_pairs(reply: tuple[str, object]) -> dict[bytes, bytes]:
    kind, items = reply
    assert kind == "*" and isinstance(items, tuple)
    values = [v for _, v in items]
    return dict(zip(values[::2], values[1::2], strict=True))


class HashCase(DifferentialCase):
    def same_hash(self, key: str) -> None:
        """HGETALL agrees (RESP2's flat array in any order)."""
        theirs, ours = self.both("HGETALL", key)
        self.assertEqual(_flat_pairs(ours), _flat_pairs(theirs))
        self.assertEqual(*self.both("HGETALL", key, protocol=3))


class HashWriteTests(HashCase):
    def test_set_get_delete(self) -> None:
        h = self.key("h")
        self.check(
            ("HSET", h, "a", "1", "b", "2", "a", "3"),
            ("HGET", h, "a"),
            ("HGET", h, "zz"),
            ("HSETNX", h, "a", "x"),
            ("HSETNX", h, "c", "x"),
            ("HMSET", h, "d", "4", "e", ""),
            ("HMGET", h, "a", "nope", "e", "a"),
            ("HLEN", h),
            ("HEXISTS", h, "a"),
            ("HEXISTS", h, "nope"),
            ("HSTRLEN", h, "c"),
            ("HSTRLEN", h, "e"),
            ("HSTRLEN", h, "nope"),
        )
        self.same_hash(h)
        self.check(
            ("HDEL", h, "a", "a", "nope", "b"),
            ("HDEL", h, "c", "d", "e"),
            ("EXISTS", h),
            ("HSET", h, "x", "1"),
            ("DEL", h),
        )

    def test_missing_key(self) -> None:
        h = self.key("h")
        self.check(
            ("HGET", h, "a"),
            ("HMGET", h, "a", "b"),
            ("HLEN", h),
            ("HEXISTS", h, "a"),
            ("HSTRLEN", h, "a"),
            ("HGETALL", h),
            ("HKEYS", h),
            ("HVALS", h),
            ("HDEL", h, "a"),
            ("HSCAN", h, "0"),
            ("HSCAN", h, "0", "COUNT", "0"),
            ("HRANDFIELD", h),
            ("HRANDFIELD", h, "3"),
            ("HRANDFIELD", h, "-3", "WITHVALUES"),
            ("EXISTS", h),
        )
        self.check(("HSETNX", h, "a", "1"), ("HGETALL", h), ("DEL", h))
        self.check(("HINCRBY", h, "a", "1"), ("HGETALL", h), ("DEL", h))
        self.check(("HINCRBYFLOAT", h, "a", "1"), ("HGETALL", h), ("DEL", h))

    def test_keys_and_vals_order_free(self) -> None:
        h = self.key("h")
        self.check(("HSET", h, "a", "1", "b", "2", "c", "3"))
        for cmd in ("HKEYS", "HVALS"):
            for protocol in (2, 3):
                theirs, ours = self.both(cmd, h, protocol=protocol)
                self.assertEqual(ours[0], theirs[0])
                self.assertEqual(sorted(ours[1]), sorted(theirs[1]))

    def test_wrong_type_and_arity(self) -> None:
        s = self.key("s")
        self.check(("SET", s, "x"))
        self.check(*((cmd[0], s, *cmd[1:]) for cmd in ALL), ("GET", s))
        self.check(
            ("HSET", s),
            ("HSET", s, "a"),
            ("HSET", s, "a", "1", "b"),
            ("HMSET", s, "a", "1", "b"),
            ("HSETNX", s, "a"),
            ("HSETNX", s, "a", "1", "2"),
            ("HGET", s),
            ("HMGET", s),
            ("HDEL", s),
            ("HLEN",),
            ("HLEN", s, "x"),
            ("HEXISTS", s),
            ("HGETALL", s, "x"),
            ("HKEYS", s, "x"),
            ("HVALS",),
            ("HINCRBY", s, "f"),
            ("HINCRBYFLOAT", s, "f", "1", "2"),
            ("HSTRLEN", s),
            ("HSCAN", s),
            ("HRANDFIELD",),
        )


class HashNumberTests(HashCase):
    def test_hincrby(self) -> None:
        h = self.key("h")
        self.check(
            ("HINCRBY", h, "n", "5"),
            ("HINCRBY", h, "n", "-7"),
            ("HINCRBY", h, "n", "x"),
            ("HINCRBY", h, "n", "01"),
            ("HINCRBY", h, "n", "+1"),
            ("HINCRBY", h, "n", "9223372036854775808"),
            ("HSET", h, "big", "9223372036854775807", "neg", "-9223372036854775808"),
            ("HSET", h, "f", "1.5", "sp", " 1", "z", "00", "e", ""),
            ("HINCRBY", h, "big", "1"),
            ("HINCRBY", h, "big", "-1"),
            ("HINCRBY", h, "neg", "-1"),
            ("HINCRBY", h, "neg", "9223372036854775807"),
            ("HINCRBY", h, "f", "1"),
            ("HINCRBY", h, "sp", "1"),
            ("HINCRBY", h, "z", "1"),
            ("HINCRBY", h, "e", "1"),
        )
        self.same_hash(h)

    def test_hincrbyfloat(self) -> None:
        h = self.key("h")
        self.check(
            ("HINCRBYFLOAT", h, "a", "10.5"),
            ("HINCRBYFLOAT", h, "a", "0.1"),
            ("HINCRBYFLOAT", h, "b", "5.0e3"),
            ("HINCRBYFLOAT", h, "c", "-0.0"),
            ("HINCRBYFLOAT", h, "d", "1e-20"),
            ("HINCRBYFLOAT", h, "d", "-1e-20"),
            ("HINCRBYFLOAT", h, "e", "0x10"),
            ("HINCRBYFLOAT", h, "e", ".5"),
            ("HINCRBYFLOAT", h, "e", "3."),
            ("HINCRBYFLOAT", h, "e", "+2E2"),
            ("HINCRBYFLOAT", h, "f", "1.7976931348623157e308"),
            ("HINCRBYFLOAT", h, "f", "1e308"),
            ("HINCRBYFLOAT", h, "g", "1e-400"),
            ("HINCRBYFLOAT", h, "g", "1"),
            ("HINCRBYFLOAT", h, "g", "3.0000000000000000001"),
            ("HINCRBYFLOAT", h, "x", "nan"),
            ("HINCRBYFLOAT", h, "x", "inf"),
            ("HINCRBYFLOAT", h, "x", "-Infinity"),
            ("HINCRBYFLOAT", h, "x", "1e5000"),
            ("HINCRBYFLOAT", h, "x", "1e-5000"),
            ("HINCRBYFLOAT", h, "x", " 1"),
            ("HINCRBYFLOAT", h, "x", "1 "),
            ("HINCRBYFLOAT", h, "x", ""),
            ("HINCRBYFLOAT", h, "x", "1e"),
            ("HINCRBYFLOAT", h, "x", "abc"),
            ("HINCRBYFLOAT", h, "x", "1_0"),
            ("HSET", h, "s", "abc", "i", "inf", "n", "nan", "sp", "1 ", "int", "7"),
            ("HINCRBYFLOAT", h, "s", "1"),
            ("HINCRBYFLOAT", h, "i", "1"),
            ("HINCRBYFLOAT", h, "n", "1"),
            ("HINCRBYFLOAT", h, "sp", "1"),
            ("HINCRBYFLOAT", h, "int", "1.25"),
            ("HINCRBYFLOAT", h, "big", "1.1e4932"),
            ("HINCRBYFLOAT", h, "big", "1.1e4932"),
            ("HINCRBYFLOAT", h, "big", "-1.1e4932"),
            ("HINCRBYFLOAT", h, "x", "0x1p-16445"),
            ("HINCRBYFLOAT", h, "x", "0x1p-16446"),
            ("HINCRBYFLOAT", h, "x", "1e" + "9" * 20),
            ("HINCRBYFLOAT", h, "x", "0x1p" + "9" * 20),
            ("HINCRBYFLOAT", h, "x", "1" * 5119),
            ("HINCRBYFLOAT", h, "x", "1" * 5120),
        )
        self.same_hash(h)


class HashScanTests(DifferentialCase):
    def scan_all(self, port_name: str, *args: str) -> tuple[dict[bytes, bytes], int]:
        """Everything HSCAN returns until cursor 0, and how many calls."""
        conn = self.conns[(port_name, 2)]
        cursor: bytes | str = "0"
        found: dict[bytes, bytes] = {}
        calls = 0
        while True:
            kind, (cur, items) = conn.call("HSCAN", *args[:1], cursor, *args[1:])
            self.assertEqual(kind, "*")
            calls += 1
            found.update(_flat_pairs(items))
            cursor = cur[1]
            self.assertEqual(str(int(cursor)).encode(), cursor)
            if cursor == b"0":
                return found, calls

    def test_scan_everything(self) -> None:
        h = self.key("h")
        pairs = [x for i in range(300) for x in (f"field:{i:04d}" * (1 + i % 3), str(i))]
        pairs += ["", "empty", "\x00\x00", "zero", "\xff", "high"]
        self.check(("HSET", h, *pairs))
        theirs, _ = self.scan_all("redis", h, "COUNT", "7")
        ours, calls = self.scan_all("eraft", h, "COUNT", "7")
        self.assertEqual(ours, theirs)
        self.assertEqual(len(ours), 303)
        self.assertGreater(calls, 40)
        default, calls = self.scan_all("eraft", h)
        self.assertEqual((default, calls), (theirs, 31))

    def test_scan_long_fields(self) -> None:
        h = self.key("h")
        pairs = [x for i in range(40) for x in ("p" * 300 + str(i), str(i))]
        self.check(("HSET", h, *pairs))
        theirs, _ = self.scan_all("redis", h, "COUNT", "3")
        ours, _ = self.scan_all("eraft", h, "COUNT", "3")
        self.assertEqual(ours, theirs)
        self.assertEqual(len(ours), 40)

    def test_scan_match(self) -> None:
        h = self.key("h")
        fields = ["a", "ab", "abc", "b", "ba", "a*", "a?", "[x", "x]", "A", "a\\b", "c-d"]
        self.check(("HSET", h, *[x for f in fields for x in (f, f + "!")]))
        for pattern in (
            "a*",
            "*",
            "a?",
            "?",
            "a\\*",
            "[ab]*",
            "[^a]*",
            "[a-b]?",
            "[b-a]",
            "*b*",
            "[x",
            "x\\]",
            "\\[x",
            "a\\\\b",
            "*\\",
            "[]x]",
            "c[-]d",
            "**a",
        ):
            theirs, _ = self.scan_all("redis", h, "MATCH", pattern)
            for count in ("1", "3", "100"):
                ours, _ = self.scan_all("eraft", h, "MATCH", pattern, "COUNT", count)
                self.assertEqual(ours, theirs, pattern)

    def test_scan_small_hash_and_errors(self) -> None:
        h, s = self.key("h"), self.key("s")
        self.check(("HSET", h, "a", "1"), ("SET", s, "x"))
        self.check(
            ("HSCAN", h, "0"),
            ("HSCAN", h, "0", "COUNT", "1", "MATCH", "a"),
            ("HSCAN", h, "0", "match", "x*", "count", "5", "match", "a*"),
            ("HSCAN", h, ""),
            ("HSCAN", h, "x"),
            ("HSCAN", h, " 0"),
            ("HSCAN", h, "0x1"),
            ("HSCAN", h, "-"),
            ("HSCAN", s, "x"),
            ("HSCAN", s, "0"),
            ("HSCAN", h, "0", "COUNT", "0"),
            ("HSCAN", h, "0", "COUNT", "-1"),
            ("HSCAN", h, "0", "COUNT", "x"),
            ("HSCAN", h, "0", "COUNT"),
            ("HSCAN", h, "0", "MATCH"),
            ("HSCAN", h, "0", "TYPE", "string"),
            ("HSCAN", h, "0", "NOVALUES"),
            ("HSCAN", h, "0", "COUNT", "x", "BAD"),
        )


class HashRandomTests(DifferentialCase):
    def test_errors(self) -> None:
        h, s = self.key("h"), self.key("s")
        self.check(("HSET", h, "a", "1"), ("SET", s, "x"))
        self.check(
            ("HRANDFIELD", h, "x"),
            ("HRANDFIELD", h, "9223372036854775808"),
            ("HRANDFIELD", h, "-9223372036854775808"),
            ("HRANDFIELD", h, "5000000000000000000", "WITHVALUES"),
            ("HRANDFIELD", h, "1", "WITHVALUE"),
            ("HRANDFIELD", h, "1", "WITHVALUES", "x"),
            ("HRANDFIELD", h, "x", "WITHVALUES"),
            ("HRANDFIELD", s, "1"),
            ("HRANDFIELD", s),
            ("HRANDFIELD", h, "0"),
            ("HRANDFIELD", h, "0", "withvalues"),
            ("HRANDFIELD", h),
            ("HRANDFIELD", h, "1"),
            ("HRANDFIELD", h, "-1"),
            ("HRANDFIELD", h, "5", "WITHVALUES"),
            ("HRANDFIELD", h, "-3", "WITHVALUES"),
        )

    def _shape(self, reply: tuple[str, object], protocol: int, values: bool) -> list[bytes]:
        kind, items = reply
        self.assertEqual(kind, "*")
        assert isinstance(items, tuple)
        if values and protocol == 3:
            out = []
            for pair in items:
                self.assertEqual(pair[0], "*")
                self.assertEqual(len(pair[1]), 2)
                out.append(pair[1][0][1])
                self.assertEqual(pair[1][1][1], self.content[pair[1][0][1]])
            return out
        flat = [v for _, v in items]
        if values:
            for f, v in zip(flat[::2], flat[1::2], strict=True):
                self.assertEqual(v, self.content[f])
            return flat[::2]
        return flat

    def test_counts(self) -> None:
        h = self.key("h")
        self.content = {f"f{i}".encode(): str(i * i).encode() for i in range(20)}
        self.check(("HSET", h, *[x for kv in self.content.items() for x in kv]))
        for protocol in (2, 3):
            seen: set[bytes] = set()
            for _ in range(30):
                theirs, ours = self.both("HRANDFIELD", h, protocol=protocol)
                self.assertEqual(ours[0], theirs[0])
                self.assertIn(ours[1], self.content)
                seen.add(ours[1])
            self.assertGreater(len(seen), 3)
            for count, values in ((5, False), (5, True), (19, True), (20, False), (25, True)):
                args = ("HRANDFIELD", h, count) + (("WITHVALUES",) if values else ())
                theirs, ours = self.both(*args, protocol=protocol)
                fields = self._shape(ours, protocol, values)
                self.assertEqual(len(fields), len(self._shape(theirs, protocol, values)))
                self.assertEqual(len(set(fields)), min(count, 20))
                self.assertLessEqual(set(fields), set(self.content))
            for values in (False, True):
                args = ("HRANDFIELD", h, -50) + (("WITHVALUES",) if values else ())
                theirs, ours = self.both(*args, protocol=protocol)
                fields = self._shape(ours, protocol, values)
                self.assertEqual(len(fields), 50)
                self.assertLessEqual(set(fields), set(self.content))
                self.assertGreater(len(set(fields)), 5)

    def test_large_hash(self) -> None:
        # above the size where picks seek at random instead of reading all
        h = self.key("h")
        self.content = {f"m{i:05d}".encode(): str(i).encode() for i in range(700)}
        self.check(("HSET", h, *[x for kv in self.content.items() for x in kv]))
        for protocol in (2, 3):
            for count, values in ((-40, True), (-3, False), (5, True), (100, False), (300, True)):
                args = ("HRANDFIELD", h, count) + (("WITHVALUES",) if values else ())
                theirs, ours = self.both(*args, protocol=protocol)
                fields = self._shape(ours, protocol, values)
                self.assertEqual(len(fields), abs(count))
                self.assertEqual(len(self._shape(theirs, protocol, values)), abs(count))
                self.assertLessEqual(set(fields), set(self.content))
                if count > 0:
                    self.assertEqual(len(set(fields)), count)
            theirs, ours = self.both("HRANDFIELD", h, protocol=protocol)
            self.assertIn(ours[1], self.content)
