"""List commands against a real redis-server (RESP2 and RESP3)."""

from __future__ import annotations

import random

from eraft_twisted.storage import layout
from eraft_twisted.testing.cluster import ClusterNode
from tests.differential import DifferentialCase
from tests.server.base import ClusterCase

BIG = "9223372036854775807"
TOO_BIG = "9223372036854775808"
MIN = "-9223372036854775808"


class ListPushPopTests(DifferentialCase):
    def test_push_and_pop(self) -> None:
        k, s, none = self.key("l"), self.key("s"), self.key("none")
        self.check(
            ("RPUSH", k, "a", "b", "c"),
            ("LPUSH", k, "x", "y"),
            ("LRANGE", k, 0, -1),
            ("LLEN", k),
            ("TYPE", k),
            ("LPOP", k),
            ("RPOP", k),
            ("LPOP", k, 2),
            ("RPOP", k, 5),
            ("LRANGE", k, 0, -1),
            ("EXISTS", k),
            ("LPOP", k),
            ("RPOP", none),
            ("LLEN", none),
            ("DEL", k),
        )
        self.check(
            ("RPUSH", k, "a", "b", "c", "d"),
            ("LPOP", k, 0),
            ("RPOP", k, 0),
            ("LPOP", k, 1),
            ("RPOP", k, 2),
            ("RPOP", k, BIG),
            ("EXISTS", k),
            ("LPOP", none, 0),
            ("LPOP", none, 1),
            ("RPOP", none, BIG),
            ("LPOP", none, -1),
            ("LPOP", k, "x"),
            ("RPOP", k, "1.0"),
            ("LPOP", k, TOO_BIG),
            ("LPOP", k, 1, 2),
            ("LPOP",),
            ("RPOP",),
            ("DEL", k),
        )
        self.check(
            ("SET", s, "v"),
            ("LPUSH", s, "a"),
            ("RPUSH", s, "a"),
            ("LPUSHX", s, "a"),
            ("RPUSHX", s, "a"),
            ("LPOP", s),
            ("RPOP", s, 0),
            ("LPOP", s, -1),
            ("LLEN", s),
            ("LPUSH", s),
            ("RPUSH", s),
            ("LLEN",),
            ("LLEN", s, s),
            ("DEL", s),
        )

    def test_pushx(self) -> None:
        k, none = self.key("l"), self.key("none")
        self.check(
            ("LPUSHX", none, "a"),
            ("RPUSHX", none, "a", "b"),
            ("EXISTS", none),
            ("RPUSH", k, "m"),
            ("LPUSHX", k, "l1", "l2"),
            ("RPUSHX", k, "r1", "r2"),
            ("LRANGE", k, 0, -1),
            ("LPUSHX", k),
            ("DEL", k),
        )

    def test_positions_survive_both_ends(self) -> None:
        k = self.key("l")
        self.check(
            ("LPUSH", k, "a"),
            ("LPOP", k),
            ("RPUSH", k, "b"),
            ("LPUSH", k, "c"),
            ("RPOP", k),
            ("RPOP", k),
            ("RPUSH", k, *[str(i) for i in range(20)]),
            ("LPUSH", k, *[f"n{i}" for i in range(20)]),
            ("LRANGE", k, 0, -1),
            ("LINDEX", k, 0),
            ("LINDEX", k, 19),
            ("LINDEX", k, 20),
            ("LINDEX", k, -1),
            ("LINDEX", k, -40),
            ("LINDEX", k, -41),
            ("LINDEX", k, 40),
            ("DEL", k),
        )


class ListReadTests(DifferentialCase):
    def test_lrange(self) -> None:
        k, s, none = self.key("l"), self.key("s"), self.key("none")
        self.check(
            ("RPUSH", k, "a", "b", "c", "d", "e"),
            ("LRANGE", k, 0, 0),
            ("LRANGE", k, 1, 3),
            ("LRANGE", k, -2, -1),
            ("LRANGE", k, -100, 100),
            ("LRANGE", k, 3, 1),
            ("LRANGE", k, 5, 10),
            ("LRANGE", k, -1, -2),
            ("LRANGE", k, 2, -3),
            ("LRANGE", k, MIN, BIG),
            ("LRANGE", none, 0, -1),
            ("LRANGE", k, "x", 1),
            ("LRANGE", k, 0, "1.5"),
            ("LRANGE", none, "x", 1),
            ("LRANGE", k, 0, TOO_BIG),
            ("LRANGE", k, 0),
            ("SET", s, "v"),
            ("LRANGE", s, 0, -1),
            ("LINDEX", s, 0),
            ("LINDEX", s, "x"),
            ("LINDEX", none, 0),
            ("LINDEX", none, "x"),
            ("LINDEX", k, "x"),
            ("LINDEX", k, "01"),
            ("LINDEX", k, -5),
            ("LINDEX", k),
            ("DEL", k, s),
        )

    def test_lpos(self) -> None:
        k, s, none = self.key("l"), self.key("s"), self.key("none")
        self.check(
            ("RPUSH", k, "a", "b", "c", "a", "a", "b", "c", "a"),
            ("LPOS", k, "a"),
            ("LPOS", k, "c"),
            ("LPOS", k, "z"),
            ("LPOS", k, "a", "RANK", 2),
            ("LPOS", k, "a", "RANK", 5),
            ("LPOS", k, "a", "RANK", -1),
            ("LPOS", k, "a", "RANK", -3),
            ("LPOS", k, "a", "COUNT", 0),
            ("LPOS", k, "a", "COUNT", 2),
            ("LPOS", k, "a", "COUNT", 10),
            ("LPOS", k, "z", "COUNT", 0),
            ("LPOS", k, "a", "COUNT", 0, "RANK", -2),
            ("LPOS", k, "a", "count", 0, "maxlen", 4),
            ("LPOS", k, "a", "COUNT", 0, "MAXLEN", 1),
            ("LPOS", k, "a", "COUNT", 0, "RANK", -1, "MAXLEN", 2),
            ("LPOS", k, "b", "MAXLEN", 1),
            ("LPOS", k, "a", "COUNT", 1, "COUNT", 3),
            ("LPOS", k, "a", "RANK", 2, "COUNT", 2, "MAXLEN", 0),
            ("LPOS", k, "a", "RANK", MIN),
            ("LPOS", k, "a", "COUNT", 0, "RANK", MIN),
            ("LPOS", k, "a", "RANK", -int(BIG)),
            ("LPOS", none, "a"),
            ("LPOS", none, "a", "COUNT", 0),
            ("LPOS", k, "a", "RANK", 0),
            ("LPOS", k, "a", "RANK", "x"),
            ("LPOS", k, "a", "COUNT", -1),
            ("LPOS", k, "a", "COUNT", "x"),
            ("LPOS", k, "a", "MAXLEN", -1),
            ("LPOS", k, "a", "MAXLEN", "x"),
            ("LPOS", k, "a", "COUNT", -1, "RANK", 0),
            ("LPOS", k, "a", "RANK", 0, "COUNT", -1),
            ("LPOS", k, "a", "RANK"),
            ("LPOS", k, "a", "FOO", 1),
            ("LPOS", none, "a", "RANK", 0),
            ("LPOS", k),
            ("SET", s, "v"),
            ("LPOS", s, "a"),
            ("LPOS", s, "a", "COUNT", 0),
            ("DEL", k, s),
        )


class ListChangeTests(DifferentialCase):
    def test_lset(self) -> None:
        k, s, none = self.key("l"), self.key("s"), self.key("none")
        self.check(
            ("RPUSH", k, "a", "b", "c"),
            ("LPUSH", k, "z"),
            ("LSET", k, 0, "A"),
            ("LSET", k, -1, "C"),
            ("LSET", k, -4, "Z"),
            ("LSET", k, 2, "B"),
            ("LRANGE", k, 0, -1),
            ("LSET", k, 4, "x"),
            ("LSET", k, -5, "x"),
            ("LSET", k, "x", "x"),
            ("LSET", none, 0, "x"),
            ("LSET", none, "x", "x"),
            ("EXISTS", none),
            ("SET", s, "v"),
            ("LSET", s, 0, "x"),
            ("LSET", s, "x", "x"),
            ("LSET", k, 0),
            ("LRANGE", k, 0, -1),
            ("DEL", k, s),
        )

    def test_lrem(self) -> None:
        k, s, none = self.key("l"), self.key("s"), self.key("none")
        items = ["a", "b", "a", "c", "a", "d", "a", "e"]
        self.check(
            ("RPUSH", k, *items),
            ("LREM", k, 1, "a"),
            ("LRANGE", k, 0, -1),
            ("LREM", k, -1, "a"),
            ("LRANGE", k, 0, -1),
            ("LREM", k, 0, "zz"),
            ("LREM", k, 5, "zz"),
            ("LREM", k, 0, "a"),
            ("LRANGE", k, 0, -1),
            ("LPUSH", k, "q"),
            ("RPUSH", k, "q"),
            ("LREM", k, -10, "b"),
            ("LRANGE", k, 0, -1),
            ("LINDEX", k, 0),
            ("LINDEX", k, -1),
            ("LLEN", k),
            ("LREM", k, 0, "q"),
            ("LREM", k, 2, "c"),
            ("LREM", k, 1, "d"),
            ("LREM", k, 1, "e"),
            ("EXISTS", k),
            ("LREM", none, 0, "a"),
            ("LREM", k, "x", "a"),
            ("LREM", none, "x", "a"),
            ("SET", s, "v"),
            ("LREM", s, 0, "a"),
            ("LREM", k, 0),
            ("DEL", k, s),
        )
        self.check(
            ("RPUSH", k, *items, *items),
            ("LREM", k, -3, "a"),
            ("LRANGE", k, 0, -1),
            ("LREM", k, 2, "a"),
            ("LRANGE", k, 0, -1),
            ("RPUSH", k, "z"),
            ("LPUSH", k, "y"),
            ("LRANGE", k, 0, -1),
            ("LINDEX", k, 3),
            ("DEL", k),
        )

    def test_linsert(self) -> None:
        k, s, none = self.key("l"), self.key("s"), self.key("none")
        self.check(
            ("RPUSH", k, "a", "b", "c", "d", "e", "b"),
            ("LINSERT", k, "BEFORE", "a", "0"),
            ("LINSERT", k, "AFTER", "b", "b2"),
            ("LINSERT", k, "before", "e", "e0"),
            ("LINSERT", k, "after", "e", "e1"),
            ("LRANGE", k, 0, -1),
            ("LINSERT", k, "AFTER", "b", "b3"),
            ("LINSERT", k, "AFTER", "zz", "x"),
            ("LINSERT", k, "BEFORE", "zz", "x"),
            ("LRANGE", k, 0, -1),
            ("LINDEX", k, 0),
            ("LINDEX", k, -1),
            ("LPUSH", k, "p"),
            ("RPUSH", k, "q"),
            ("LINSERT", k, "AFTER", "q", "q1"),
            ("LINSERT", k, "BEFORE", "p", "p0"),
            ("LRANGE", k, 0, -1),
            ("LLEN", k),
            ("LINSERT", none, "BEFORE", "a", "x"),
            ("EXISTS", none),
            ("LINSERT", k, "MIDDLE", "a", "x"),
            ("LINSERT", none, "MIDDLE", "a", "x"),
            ("SET", s, "v"),
            ("LINSERT", s, "BEFORE", "a", "x"),
            ("LINSERT", s, "MIDDLE", "a", "x"),
            ("LINSERT", k, "BEFORE", "a"),
            ("DEL", k, s),
        )

    def test_ltrim(self) -> None:
        k, s, none = self.key("l"), self.key("s"), self.key("none")
        items = [str(i) for i in range(10)]
        self.check(
            ("RPUSH", k, *items),
            ("LTRIM", k, 1, -2),
            ("LRANGE", k, 0, -1),
            ("LTRIM", k, 0, -1),
            ("LTRIM", k, -3, 100),
            ("LRANGE", k, 0, -1),
            ("LINDEX", k, 0),
            ("LPUSH", k, "h"),
            ("RPUSH", k, "t"),
            ("LRANGE", k, 0, -1),
            ("LTRIM", k, 1, 1),
            ("LRANGE", k, 0, -1),
            ("LLEN", k),
            ("LTRIM", k, 5, 1),
            ("EXISTS", k),
            ("RPUSH", k, *items),
            ("LTRIM", k, 2, 1),
            ("EXISTS", k),
            ("RPUSH", k, *items),
            ("LTRIM", k, 10, 20),
            ("EXISTS", k),
            ("RPUSH", k, *items),
            ("LTRIM", k, -100, -50),
            ("EXISTS", k),
            ("RPUSH", k, *items),
            ("LTRIM", k, MIN, BIG),
            ("LLEN", k),
            ("LTRIM", k, "x", 1),
            ("LTRIM", none, "x", 1),
            ("LTRIM", none, 0, 1),
            ("EXISTS", none),
            ("SET", s, "v"),
            ("LTRIM", s, 0, 1),
            ("LTRIM", k, 0),
            ("DEL", k, s),
        )


class ListMoveTests(DifferentialCase):
    def test_lmove(self) -> None:
        a, b, s, none = self.key("a"), self.key("b"), self.key("s"), self.key("none")
        self.check(
            ("RPUSH", a, "1", "2", "3", "4"),
            ("LMOVE", a, b, "LEFT", "RIGHT"),
            ("LMOVE", a, b, "right", "left"),
            ("LMOVE", a, b, "LEFT", "LEFT"),
            ("LMOVE", a, b, "RIGHT", "RIGHT"),
            ("LRANGE", b, 0, -1),
            ("EXISTS", a),
            ("LMOVE", a, b, "LEFT", "LEFT"),
            ("LMOVE", b, b, "LEFT", "RIGHT"),
            ("LRANGE", b, 0, -1),
            ("LMOVE", b, b, "RIGHT", "LEFT"),
            ("LMOVE", b, b, "LEFT", "LEFT"),
            ("LMOVE", b, b, "RIGHT", "RIGHT"),
            ("LRANGE", b, 0, -1),
            ("SET", s, "v"),
            ("LMOVE", none, s, "LEFT", "LEFT"),
            ("LMOVE", b, s, "LEFT", "LEFT"),
            ("LMOVE", s, b, "LEFT", "LEFT"),
            ("LRANGE", b, 0, -1),
            ("LMOVE", b, b, "UP", "LEFT"),
            ("LMOVE", b, b, "LEFT", "DOWN"),
            ("LMOVE", none, none, "UP", "LEFT"),
            ("LMOVE", b, b, "LEFT"),
            ("DEL", a, b, s),
        )
        self.check(
            ("RPUSH", a, "only"),
            ("LMOVE", a, a, "LEFT", "RIGHT"),
            ("LRANGE", a, 0, -1),
            ("LMOVE", a, b, "LEFT", "RIGHT"),
            ("EXISTS", a),
            ("LRANGE", b, 0, -1),
            ("DEL", a, b),
        )

    def test_rpoplpush(self) -> None:
        a, b, s, none = self.key("a"), self.key("b"), self.key("s"), self.key("none")
        self.check(
            ("RPUSH", a, "1", "2", "3"),
            ("RPOPLPUSH", a, b),
            ("RPOPLPUSH", a, b),
            ("RPOPLPUSH", b, b),
            ("LRANGE", a, 0, -1),
            ("LRANGE", b, 0, -1),
            ("RPOPLPUSH", a, a),
            ("RPOPLPUSH", a, b),
            ("EXISTS", a),
            ("RPOPLPUSH", none, b),
            ("SET", s, "v"),
            ("RPOPLPUSH", none, s),
            ("RPOPLPUSH", b, s),
            ("RPOPLPUSH", s, b),
            ("LRANGE", b, 0, -1),
            ("RPOPLPUSH", a),
            ("RPOPLPUSH", a, b, a),
            ("DEL", a, b, s),
        )


class ListMixTests(DifferentialCase):
    def test_ttl_survives_changes(self) -> None:
        k = self.key("l")
        self.check(
            ("RPUSH", k, "a", "b"),
            ("EXPIRE", k, 100),
            ("LPUSH", k, "c"),
            ("TTL", k),
            ("LSET", k, 0, "d"),
            ("LINSERT", k, "AFTER", "a", "e"),
            ("LREM", k, 0, "d"),
            ("LTRIM", k, 0, 1),
            ("RPOP", k),
            ("TTL", k),
            ("LRANGE", k, 0, -1),
            ("DEL", k),
        )

    def test_random_operations(self) -> None:
        rng = random.Random(12)
        k, other = self.key("l"), self.key("o")
        commands: list[tuple[str | int, ...]] = [("RPUSH", k, *"abcdx" * 6)]
        for _ in range(150):
            e, i = rng.choice("abcdx"), rng.randint(-12, 12)
            commands.append(
                rng.choice(
                    [
                        ("LPUSH", k, e, "z"),
                        ("RPUSH", k, e, e, "z"),
                        ("LPOP", k, rng.randint(0, 2)),
                        ("RPOP", k),
                        ("LREM", k, rng.randint(-2, 2), e),
                        ("LINSERT", k, rng.choice(["BEFORE", "AFTER"]), e, "y"),
                        ("LTRIM", k, rng.choice([0, 1, 2, -30]), rng.choice([-1, -2, 30, 4])),
                        ("LSET", k, i, e),
                        ("LPOS", k, e, "RANK", rng.choice([1, -1, 2]), "COUNT", 0),
                        ("LMOVE", k, rng.choice([k, other]), "LEFT", "RIGHT"),
                        ("LMOVE", other, k, "RIGHT", "LEFT"),
                        ("LINDEX", k, i),
                    ]
                )
            )
            commands.append(("LRANGE", k, 0, -1))
        commands.append(("DEL", k, other))
        self.check(*commands)


def _rows(node: ClusterNode) -> list[bytes]:
    """The values of every collection row ``node`` holds, in key order."""
    area = layout.ROWS_PREFIX
    return [v for _, v in node.server.store.iterate_rows(area, layout.prefix_stop(area))]


class ListRowTests(ClusterCase):
    """One row per element, on every replica; removed elements leave no row."""

    def test_rows_follow_the_elements(self) -> None:
        leader = self.leader()
        leader.call("RPUSH", "l", *[str(i) for i in range(10)])
        leader.call("LPUSH", "l", "a", "b")
        leader.call("LPOP", "l", 3)
        leader.call("RPOP", "l")
        leader.call("LREM", "l", -1, "5")
        leader.call("LREM", "l", 1, "2")
        leader.call("LINSERT", "l", "BEFORE", "1", "x")
        leader.call("LINSERT", "l", "AFTER", "7", "y")
        leader.call("LTRIM", "l", 1, -2)
        leader.call("LSET", "l", 0, "z")
        leader.call("LMOVE", "l", "l", "LEFT", "RIGHT")
        expected = leader.call("LRANGE", "l", 0, -1)
        self.assertEqual(expected, [b"3", b"4", b"6", b"7", b"y", b"z"])
        self.cluster.advance(1)
        for node in self.nodes():
            self.assertEqual(_rows(node), expected)
            self.assertEqual(node.call("LINDEX", "l", -2), b"y")

    def test_trimming_everything_drops_the_rows(self) -> None:
        leader = self.leader()
        leader.call("RPUSH", "l", *[str(i) for i in range(50)])
        self.assertEqual(leader.call("LTRIM", "l", 60, 70), "OK")
        self.assertEqual(leader.call("EXISTS", "l"), 0)
        self.cluster.run_until(lambda: _rows(leader) == [])
        for node in self.nodes():
            self.cluster.run_until(lambda node=node: _rows(node) == [])  # type: ignore[misc]
