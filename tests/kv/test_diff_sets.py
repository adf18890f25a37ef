"""Set commands against a real redis-server (see :mod:`tests.differential`).

Redis answers a set's members in its hash table's order: RESP2 arrays of
members (and SSCAN's) are compared sorted; RESP3 sets are order-free in
the harness already. Random picks (SPOP, SRANDMEMBER) are checked by
their sizes and membership.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from twisted.trial import unittest

from eraft_twisted.hashslot import key_hash_slot
from eraft_twisted.kv.records import KeyType, Meta, unpack_meta
from eraft_twisted.kv.statemachine import KVStateMachine, encode_op
from eraft_twisted.storage import layout
from tests.differential import DifferentialCase
from tests.kv.test_statemachine import DictStore

WRONGTYPE = ("-", "WRONGTYPE Operation against a key holding the wrong kind of value")


def _sorted(reply: Any) -> Any:
    kind, items = reply
    return (kind, tuple(sorted(items, key=repr))) if kind in "*~" and items else reply


class SetDiffCase(DifferentialCase):
    def key(self, name: str = "k") -> str:
        # One hash tag for all, so multi-key commands work if sharded.
        return super().key("{s}" + name)

    def same(self, *cmd: str | int) -> Any:
        """Run ``cmd`` on both over RESP2 and RESP3: equal replies, an
        array of members compared as a multiset. Returns ours (RESP2)."""
        out = None
        for protocol in (2, 3):
            theirs, ours = self.both(*cmd, protocol=protocol)
            self.assertEqual(_sorted(ours), _sorted(theirs), f"RESP{protocol} {cmd!r}")
            if protocol == 2:
                out = ours
        return out

    def members(self, key: str) -> set[bytes]:
        kind, items = self.conns[("eraft", 2)].call("SMEMBERS", key)
        self.assertEqual(kind, "*")
        return {v for _, v in items}


class BasicTests(SetDiffCase):
    def test_add_remove_card(self) -> None:
        s, t = self.key(), self.key("str")
        self.check(
            ("SET", t, "x"),
            ("SADD", s, "a", "b", "a", "c"),
            ("SADD", s, "b", "d"),
            ("SCARD", s),
            ("SISMEMBER", s, "a"),
            ("SISMEMBER", s, "zz"),
            ("SMISMEMBER", s, "a", "zz", "d", "a"),
            ("SREM", s, "a", "zz", "a"),
            ("SCARD", s),
            ("SCARD", self.key("none")),
            ("SISMEMBER", self.key("none"), "a"),
            ("SMISMEMBER", self.key("none"), "a", "b"),
            ("SREM", self.key("none"), "a"),
            ("SREM", s, "b", "c", "d"),
            ("EXISTS", s),
            ("TYPE", s),
        )
        self.same("SMEMBERS", s)

    def test_smembers(self) -> None:
        s = self.key()
        self.check(("SADD", s, "x", "1", "longer member", ""))
        self.same("SMEMBERS", s)
        self.same("SMEMBERS", self.key("none"))
        self.check(("TYPE", s))

    def test_wrongtype(self) -> None:
        t = self.key("str")
        self.check(("SET", t, "x"))
        for cmd in (
            ("SADD", t, "a"),
            ("SREM", t, "a"),
            ("SMEMBERS", t),
            ("SISMEMBER", t, "a"),
            ("SMISMEMBER", t, "a"),
            ("SCARD", t),
            ("SPOP", t),
            ("SPOP", t, 0),
            ("SRANDMEMBER", t),
            ("SRANDMEMBER", t, -1),
            ("SSCAN", t, 0),
        ):
            theirs = self.check(cmd)[0]
            self.assertEqual(theirs, WRONGTYPE)
        h = self.key("h")
        self.check(("HSET", h, "f", "v"), ("SADD", h, "a"), ("SCARD", h))

    def test_arity(self) -> None:
        k = self.key()
        self.check(
            ("SADD", k),
            ("SREM", k),
            ("SMEMBERS",),
            ("SMEMBERS", k, k),
            ("SISMEMBER", k),
            ("SMISMEMBER", k),
            ("SCARD",),
            ("SPOP",),
            ("SRANDMEMBER",),
            ("SINTER",),
            ("SUNION",),
            ("SDIFF",),
            ("SINTERSTORE", k),
            ("SUNIONSTORE", k),
            ("SDIFFSTORE", k),
            ("SINTERCARD", 1),
            ("SMOVE", k, k),
            ("SSCAN", k),
        )

    def test_command_info(self) -> None:
        for name in ("sadd", "smembers", "sinter", "sinterstore", "smove", "sintercard", "sscan"):
            theirs, ours = self.both("COMMAND", "INFO", name)
            # name, arity, flags (any order), first key, last key, step
            ours_info, theirs_info = ours[1][0][1], theirs[1][0][1]
            self.assertEqual(ours_info[:2] + ours_info[3:6], theirs_info[:2] + theirs_info[3:6])
            self.assertEqual(set(ours_info[2][1]), set(theirs_info[2][1]), name)


class RandomTests(SetDiffCase):
    def test_spop_small(self) -> None:
        s, t = self.key(), self.key("str")
        self.check(
            ("SET", t, "x"),
            ("SPOP", self.key("none")),
            ("SPOP", self.key("none"), 0),
            ("SPOP", self.key("none"), 3),
            ("SADD", s, "a"),
            ("SPOP", s, 0),
            ("SPOP", s, -1),
            ("SPOP", s, "abc"),
            ("SPOP", s, "9223372036854775808"),
            ("SPOP", s, 1, 2),
            ("SPOP", t, 1),
        )
        for protocol in (2, 3):
            self.check(("SADD", s, "a", "b", "c"))
            theirs, ours = self.both("SPOP", s, protocol=protocol)
            self.assertEqual(ours[0], theirs[0])
            self.assertIn(ours[1], (b"a", b"b", b"c"))
            theirs, ours = self.both("SPOP", s, 1, protocol=protocol)
            self.assertEqual((ours[0], len(ours[1])), (theirs[0], 1))
            self.assertEqual(self.same("SCARD", s), (":", 1))
            # A count past the size pops everything and deletes the key.
            theirs, ours = self.both("SPOP", s, 5, protocol=protocol)
            self.assertEqual((ours[0], len(ours[1])), (theirs[0], 1))
            self.check(("EXISTS", s))

    def test_spop_big(self) -> None:
        s = self.key()
        members = [f"m{i}".encode() for i in range(300)]
        self.check(("SADD", s, *members))
        _, popped = self.both("SPOP", s, 40)
        got = [v for _, v in popped[1]]
        self.assertEqual(len(set(got)), 40)
        self.assertTrue(set(got) <= set(members))
        for _ in range(20):
            _, one = self.both("SPOP", s)
            got.append(one[1])
        self.assertEqual(len(set(got)), 60)
        self.assertEqual(self.members(s), set(members) - set(got))
        self.check(("SCARD", s))

    def test_srandmember(self) -> None:
        s = self.key()
        self.check(
            ("SRANDMEMBER", self.key("none")),
            ("SRANDMEMBER", self.key("none"), 3),
            ("SRANDMEMBER", self.key("none"), -3),
            ("SADD", s, "a", "b", "c", "d"),
            ("SRANDMEMBER", s, 0),
            ("SRANDMEMBER", s, "abc"),
            ("SRANDMEMBER", s, "-0"),
            ("SRANDMEMBER", s, "9223372036854775808"),
            ("SRANDMEMBER", s, "-9223372036854775808"),
            ("SRANDMEMBER", s, 1, 2),
        )
        self.same("SRANDMEMBER", s, 4)
        self.same("SRANDMEMBER", s, 100)
        for protocol in (2, 3):
            theirs, ours = self.both("SRANDMEMBER", s, protocol=protocol)
            self.assertEqual(ours[0], theirs[0])
            self.assertIn(ours[1], (b"a", b"b", b"c", b"d"))
            for count in (2, -3, -9):
                theirs, ours = self.both("SRANDMEMBER", s, count, protocol=protocol)
                self.assertEqual((ours[0], len(ours[1])), (theirs[0], len(theirs[1])))
                self.assertTrue({v for _, v in ours[1]} <= {b"a", b"b", b"c", b"d"})
            _, two = self.both("SRANDMEMBER", s, 2, protocol=protocol)
            self.assertEqual(len(set(two[1])), 2)
        self.check(("SCARD", s))

    def test_srandmember_big(self) -> None:
        s = self.key()
        members = {f"user:{i}".encode() for i in range(200)}
        self.check(("SADD", s, *sorted(members)))
        for count in (10, 60, 150):
            _, ours = self.both("SRANDMEMBER", s, count)
            got = [v for _, v in ours[1]]
            self.assertEqual(len(set(got)), count)
            self.assertTrue(set(got) <= members)
        _, ours = self.both("SRANDMEMBER", s, -500)
        got = [v for _, v in ours[1]]
        self.assertEqual(len(got), 500)
        self.assertTrue(set(got) <= members)
        # Not uniform, but not stuck on a few members either.
        self.assertGreater(len(set(got)), 50)
        self.check(("SCARD", s))


class MultiKeyTests(SetDiffCase):
    def setUp(self) -> None:
        super().setUp()
        self.a, self.b, self.c = self.key("a"), self.key("b"), self.key("c")
        self.t, self.none = self.key("str"), self.key("none")
        self.check(
            ("SADD", self.a, "1", "2", "3", "x", "y"),
            ("SADD", self.b, "2", "3", "z"),
            ("SADD", self.c, "3", "x", "2", "q"),
            ("SET", self.t, "v"),
        )

    def test_read_ops(self) -> None:
        a, b, c, t, none = self.a, self.b, self.c, self.t, self.none
        for op in ("SINTER", "SUNION", "SDIFF"):
            self.same(op, a)
            self.same(op, a, b)
            self.same(op, a, b, c)
            self.same(op, b, a)
            self.same(op, a, none)
            self.same(op, none, a)
            self.same(op, none)
            self.same(op, a, a)
            self.assertEqual(self.same(op, a, t), WRONGTYPE)
            self.assertEqual(self.same(op, none, t), WRONGTYPE)
            self.assertEqual(self.same(op, t, a), WRONGTYPE)

    def test_sintercard(self) -> None:
        a, b, c, t, none = self.a, self.b, self.c, self.t, self.none
        self.check(
            ("SINTERCARD", 1, a),
            ("SINTERCARD", 2, a, b),
            ("SINTERCARD", 3, a, b, c),
            ("SINTERCARD", 3, a, b, c, "LIMIT", 1),
            ("SINTERCARD", 3, a, b, c, "limit", 0),
            ("SINTERCARD", 1, a, "LIMIT", 3, "LIMIT", 2),
            ("SINTERCARD", 2, a, none),
            ("SINTERCARD", 2, none, t),
            ("SINTERCARD", 2, a, t),
            ("SINTERCARD", 0, a),
            ("SINTERCARD", -1, a),
            ("SINTERCARD", "abc", a),
            ("SINTERCARD", 3, a, b),
            ("SINTERCARD", 1, a, "LIMIT"),
            ("SINTERCARD", 1, a, "LIMIT", -1),
            ("SINTERCARD", 1, a, "LIMIT", "x"),
            ("SINTERCARD", 2, t, a, "LIMIT", "x"),
            ("SINTERCARD", 1, a, b),
            ("SINTERCARD", 1, a, "foo", 1),
        )

    def test_store(self) -> None:
        a, b, c, t, none = self.a, self.b, self.c, self.t, self.none
        for op in ("SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"):
            d = self.key("d")
            self.check(
                (op, d, a, b),
                ("TYPE", d),
                ("SCARD", d),
                (op, d, a, t),
                ("SCARD", d),
                (op, d, none),
                ("EXISTS", d),
                (op, d, a, b, c),
            )
            self.same("SMEMBERS", d)
            # The destination may be a source; a string is overwritten; the
            # TTL of the old value goes.
            self.check((op, d, d, a), ("SCARD", d))
            self.same("SMEMBERS", d)
            s = self.key("s")
            self.check(("SET", s, "x", "EX", 100), (op, s, a, c), ("TTL", s), ("TYPE", s))
            self.same("SMEMBERS", s)
            self.check(("SINTERSTORE", s, a, none), ("EXISTS", s), ("GET", s))

    def test_smove(self) -> None:
        a, b, t, none = self.a, self.b, self.t, self.none
        d = self.key("d")
        self.check(
            ("SMOVE", a, b, "1"),
            ("SMOVE", a, b, "2"),
            ("SMOVE", a, b, "zz"),
            ("SCARD", a),
            ("SCARD", b),
            ("SMOVE", a, a, "x"),
            ("SMOVE", a, a, "zz"),
            ("SMOVE", none, t, "x"),
            ("SMOVE", none, a, "x"),
            ("SMOVE", a, t, "x"),
            ("SMOVE", a, t, "zz"),
            ("SMOVE", t, a, "x"),
            ("SMOVE", a, d, "x"),
            ("SMOVE", a, d, "y"),
            ("SMOVE", a, d, "3"),
            ("EXISTS", a),
            ("SCARD", d),
            ("TYPE", d),
        )
        self.same("SMEMBERS", b)
        self.same("SMEMBERS", d)


class ScanTests(SetDiffCase):
    def test_small(self) -> None:
        s, t = self.key(), self.key("str")
        self.check(("SADD", s, "a", "ab", "b", "c"), ("SET", t, "x"))
        for cmd in (
            ("SSCAN", s, 0),
            ("SSCAN", s, 0, "COUNT", 20),
            ("SSCAN", s, 0, "MATCH", "a*"),
            ("SSCAN", s, 0, "match", "z*", "count", 100),
            ("SSCAN", self.key("none"), 0),
        ):
            for protocol in (2, 3):
                theirs, ours = self.both(*cmd, protocol=protocol)
                self.assertEqual(ours[1][0], theirs[1][0], cmd)
                self.assertEqual(_sorted(ours[1][1]), _sorted(theirs[1][1]), cmd)
        self.check(
            ("SSCAN", s, "abc"),
            ("SSCAN", s, 0, "COUNT", 0),
            ("SSCAN", s, 0, "COUNT", "abc"),
            ("SSCAN", s, 0, "MATCH"),
            ("SSCAN", s, 0, "TYPE", "string"),
            ("SSCAN", s, 0, "FOO", "bar"),
        )

    def test_full_iteration(self) -> None:
        s = self.key()
        members = {f"m{i:03}".encode() for i in range(250)}
        self.check(("SADD", s, *sorted(members)))
        for count, match in ((7, None), (100, None), (13, b"m1*")):
            seen: set[bytes] = set()
            cursor = b"0"
            calls = 0
            while True:
                extra = ("MATCH", match) if match is not None else ()
                kind, (cur, items) = self.conns[("eraft", 2)].call(
                    "SSCAN", s, cursor, "COUNT", count, *extra
                )
                calls += 1
                seen |= {v for _, v in items[1]}
                cursor = cur[1]
                if cursor == b"0":
                    break
            want = {m for m in members if match is None or m.startswith(b"m1")}
            self.assertEqual(seen, want)
            self.assertLessEqual(calls, 250 // count + 2)


class ReplicaTests(unittest.TestCase):
    """SPOP and SRANDMEMBER applied on two replicas, from the same seed."""

    def setUp(self) -> None:
        self.replicas = [
            (store, KVStateMachine(store))  # type: ignore[arg-type]
            for store in (DictStore(), DictStore())
        ]

    def apply(self, name: str, now: int, *args: object) -> list[Any]:
        out = []
        for store, sm in self.replicas:
            result, writes = sm.apply(encode_op(name, now, *args))
            store.stage(writes)
            out.append(result)
        return out

    def test_same_choices_everywhere(self) -> None:
        members = [f"user:{i}".encode() for i in range(500)]
        self.apply("sadd", 0, b"k", members)
        left = set(members)
        for seed in range(30):
            one, two = self.apply("spop", 0, b"k", 7, seed)
            self.assertEqual(one, two)
            assert isinstance(one, list)
            self.assertEqual(len(set(one)), 7)
            self.assertTrue(set(one) <= left)
            left -= set(one)
            single, again = self.apply("spop", 0, b"k", None, seed)
            self.assertEqual(single, again)
            left.discard(single)
        (a_store, _), (b_store, _) = self.replicas
        self.assertEqual(a_store.rows, b_store.rows)
        self.assertEqual(a_store.data, b_store.data)
        self.assertEqual(set(self.apply("smembers", 0, b"k")[0]), left)
        self.assertEqual(self.apply("scard", 0, b"k"), [len(left)] * 2)

    def test_picks_spread(self) -> None:
        members = [f"{i:x}-{i * 7919 % 1000}".encode() for i in range(300)]
        self.apply("sadd", 0, b"k", members)
        picks, _ = self.apply("srandmember", 0, b"k", -6000, 1)
        assert isinstance(picks, list)
        counts = Counter(picks)
        # Uniform: 20 each (a binomial with sd 4.4).
        self.assertEqual(len(counts), 300)
        self.assertLess(max(counts.values()), 45)
        self.assertGreater(min(counts.values()), 3)

    def test_picks_not_biased_by_names(self) -> None:
        # One member far from a dense run of names gets no larger share.
        members = [f"a{i:03}".encode() for i in range(299)] + [b"zzzzzzzz"]
        self.apply("sadd", 0, b"k", members)
        picks, _ = self.apply("srandmember", 0, b"k", -6000, 3)
        assert isinstance(picks, list)
        self.assertLess(Counter(picks)[b"zzzzzzzz"], 45)

    def positions(self, key: bytes) -> list[bytes]:
        """The members of set ``key`` by position, after checking that the
        positions are 0..n-1 and every member's row names its position."""
        store = self.replicas[0][0]
        meta = unpack_meta(store.data[key])
        prefix = layout.rows_prefix(meta.slot, meta.version)
        own = {
            k[layout.ROW_HEADER :]: v
            for k, v in store.rows.items()
            if k.startswith(prefix) and v is not None
        }
        by_position = sorted((k[1:], v) for k, v in own.items() if k[:1] == b"p")
        expected = [i.to_bytes(8, "big") for i in range(meta.count)]
        self.assertEqual([p for p, _ in by_position], expected)
        self.assertEqual({k[1:]: v for k, v in own.items() if k[:1] == b"m"},
                         {m: p for p, m in by_position})
        return [m for _, m in by_position]

    def test_two_rows_per_member(self) -> None:
        self.apply("sadd", 0, b"k", [b"a", b"b", b"c"])
        subs = sorted(k[layout.ROW_HEADER :] for k in self.replicas[0][0].rows)
        self.assertEqual([s for s in subs if s[:1] == b"m"], [b"ma", b"mb", b"mc"])
        self.assertEqual(self.positions(b"k"), [b"a", b"b", b"c"])
        self.assertEqual(len(subs), 6)
        self.apply("srem", 0, b"k", [b"b"])
        self.apply("smove", 0, b"k", b"j", b"c")
        self.apply("sunionstore", 0, [b"u", b"k", b"j"])
        self.assertEqual(len(self.replicas[0][0].rows), 2 + 2 + 4)
        popped = self.apply("spop", 0, b"u", None, 1)[0]
        self.assertIn(popped, (b"a", b"c"))
        self.assertEqual(len(self.replicas[0][0].rows), 2 + 2 + 2)

    def test_positions_stay_dense(self) -> None:
        rng = random.Random(7)
        model: dict[bytes, set[bytes]] = {b"k": set(), b"j": set()}
        names = [f"m{i}".encode() for i in range(60)]
        for step in range(600):
            key = rng.choice([b"k", b"j"])
            other = b"j" if key == b"k" else b"k"
            what = rng.randrange(5)
            if what == 0:
                added = rng.sample(names, rng.randrange(1, 6))
                self.apply("sadd", 0, key, added)
                model[key] |= set(added)
            elif what == 1:
                gone = rng.sample(names, rng.randrange(1, 6))
                self.apply("srem", 0, key, gone)
                model[key] -= set(gone)
            elif what == 2:
                one, two = self.apply("spop", 0, key, None, step)
                self.assertEqual(one, two)
                self.assertEqual(one is None, not model[key])
                model[key].discard(one)
            elif what == 3:
                n = rng.randrange(0, 5)
                one, two = self.apply("spop", 0, key, n, step)
                self.assertEqual(one, two)
                self.assertEqual(len(one), min(n, len(model[key])))
                self.assertTrue(set(one) <= model[key])
                model[key] -= set(one)
            else:
                member = rng.choice(names)
                moved = member in model[key]
                self.assertEqual(self.apply("smove", 0, key, other, member), [int(moved)] * 2)
                if moved:
                    model[key].discard(member)
                    model[other].add(member)
            for name, members in model.items():
                if members:
                    self.assertEqual(set(self.positions(name)), members)
                else:
                    self.assertNotIn(name, self.replicas[0][0].data)
        (a_store, _), (b_store, _) = self.replicas
        self.assertEqual(a_store.rows, b_store.rows)

    def test_sets_stored_without_positions_are_renumbered(self) -> None:
        # The layout of an earlier development build: m+member -> b"", and
        # h + 8-byte hash + member, no positions.
        members = [f"old:{i}".encode() for i in range(40)]
        for store, _ in self.replicas:
            meta = Meta(KeyType.SET, 0, 5, 5, len(members), key_hash_slot(b"k"))
            store.data[b"k"] = meta.pack()
            for i, member in enumerate(members):
                store.rows[meta.prefix + b"m" + member] = b""
                store.rows[meta.prefix + b"h" + i.to_bytes(8, "big") + member] = b""
        picks, again = self.apply("srandmember", 0, b"k", 5, 3)
        self.assertEqual(picks, again)
        self.assertTrue(set(picks) <= set(members))
        self.assertEqual(len(set(picks)), 5)
        popped = self.apply("spop", 0, b"k", None, 9)[0]
        self.assertIn(popped, members)
        left = set(members) - {popped}
        self.assertEqual(set(self.positions(b"k")), left)
        self.assertFalse(any(k[layout.ROW_HEADER :][:1] == b"h" for k in self.replicas[0][0].rows))
        self.apply("srem", 0, b"k", [b"old:1", b"old:2"])
        self.apply("sadd", 0, b"k", [b"new"])
        left = (left - {b"old:1", b"old:2"}) | {b"new"}
        self.assertEqual(set(self.positions(b"k")), left)
        (a_store, _), (b_store, _) = self.replicas
        self.assertEqual(a_store.rows, b_store.rows)

    def test_pick_reads_no_range(self) -> None:
        members = [f"user:{i}".encode() for i in range(1000)]
        self.apply("sadd", 0, b"k", members)
        store = self.replicas[0][0]
        opened = []
        plain = store.iterate_rows

        def counting(start: bytes, stop: bytes, reverse: bool = False) -> Any:
            opened.append(start)
            return plain(start, stop, reverse)

        store.iterate_rows = counting  # type: ignore[method-assign]
        for seed in range(50):
            opened.clear()
            self.apply("spop", 0, b"k", None, seed)
            self.apply("spop", 0, b"k", 3, seed)
        picks, _ = self.apply("srandmember", 0, b"k", -20, 5)
        distinct, _ = self.apply("srandmember", 0, b"k", 100, 5)
        assert isinstance(distinct, list)
        self.assertEqual(len(set(distinct)), 100)
        self.assertEqual(opened, [])

    def test_pop_big_set_to_empty(self) -> None:
        members = {f"user:{i}".encode() for i in range(100)}
        self.apply("sadd", 0, b"k", sorted(members))
        got: list[bytes] = []
        for seed in range(20):
            one, two = self.apply("spop", 0, b"k", 3, seed)
            self.assertEqual(one, two)
            assert isinstance(one, list)
            got += one
        while True:
            single, _ = self.apply("spop", 0, b"k", None, len(got))
            if single is None:
                break
            got.append(single)
        self.assertEqual(sorted(got), sorted(members))
        self.assertEqual(self.replicas[0][0].rows, {})
        self.assertEqual(self.replicas[1][0].rows, {})

    def test_pop_to_empty(self) -> None:
        self.apply("sadd", 0, b"k", [b"a", b"b", b"c"])
        got = [self.apply("spop", 0, b"k", None, seed)[0] for seed in range(3)]
        self.assertEqual(sorted(got), [b"a", b"b", b"c"])
        self.assertEqual(self.apply("spop", 0, b"k", None, 9), [None, None])
        self.assertEqual(self.replicas[0][0].rows, {})
