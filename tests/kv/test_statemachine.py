"""The KV state machine applied directly, with a dict as the store."""

from __future__ import annotations

from collections.abc import Iterator

import msgpack
from twisted.trial import unittest

from eraft_twisted.kv.scanning import Glob
from eraft_twisted.kv.statemachine import (
    KEEPTTL,
    OK,
    ApplyError,
    KVStateMachine,
    Op,
    OpError,
    SetCond,
    encode_op,
    live_value,
    parse_int,
    relative,
    stamp_op,
    unpack_record,
)


class DictStore:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.meta: dict[bytes, bytes | None] = {}
        self.rows: dict[bytes, bytes] = {}

    def get_record(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def meta_items(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in self.meta.items() if k.startswith(prefix) and v is not None]

    def clear_all(self) -> None:
        self.data.clear()

    def stage_meta(self, name: bytes, value: bytes | None) -> None:
        self.meta[name] = value

    def stage(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        for k, v in writes:
            if v is None:
                self.data.pop(k, None)
            else:
                self.data[k] = v

    def get_row(self, db_key: bytes) -> bytes | None:
        return self.rows.get(db_key)

    def stage_row(self, db_key: bytes, value: bytes | None) -> None:
        if value is None:
            self.rows.pop(db_key, None)
        else:
            self.rows[db_key] = value

    def iterate_rows(
        self, start: bytes, stop: bytes, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        return iter(
            sorted(((k, v) for k, v in self.rows.items() if start <= k < stop), reverse=reverse)
        )


class StateMachineTests(unittest.TestCase):
    def setUp(self) -> None:
        self.store = DictStore()
        self.sm = KVStateMachine(self.store)

    def apply(self, op: Op, now: int, *args: object) -> object:
        result, writes = self.sm.apply(encode_op(op, now, *args))
        self.store.stage(writes)
        return result

    def value(self, key: bytes, now: int = 0) -> bytes | None:
        return live_value(self.store.data.get(key), now)

    def test_set_get(self) -> None:
        self.assertEqual(self.apply(Op.SET, 1, b"k", b"v", 0, 0, False), OK)
        self.assertEqual(self.value(b"k"), b"v")

    def test_set_nx_xx_get(self) -> None:
        self.assertIsNone(self.apply(Op.SET, 1, b"k", b"v", 0, int(SetCond.XX), False))
        self.assertEqual(self.apply(Op.SET, 1, b"k", b"v", 0, int(SetCond.NX), False), OK)
        self.assertIsNone(self.apply(Op.SET, 1, b"k", b"w", 0, int(SetCond.NX), False))
        self.assertEqual(self.apply(Op.SET, 1, b"k", b"w", 0, int(SetCond.XX), True), b"v")
        self.assertEqual(self.value(b"k"), b"w")

    def test_ttl_is_absolute_and_expired_keys_are_gone(self) -> None:
        self.apply(Op.SET, 1000, b"k", b"v", 2000, 0, False)
        self.assertEqual(self.value(b"k", 1999), b"v")
        self.assertIsNone(self.value(b"k", 2000))
        # INCR on an expired key starts again from 0, with no TTL.
        self.apply(Op.SET, 1000, b"n", b"5", 2000, 0, False)
        self.assertEqual(self.apply(Op.INCRBY, 3000, b"n", 1), 1)
        self.assertEqual(unpack_record(self.store.data[b"n"])[1], 0)

    def test_keepttl(self) -> None:
        self.apply(Op.SET, 0, b"k", b"v", 5000, 0, False)
        self.apply(Op.SET, 0, b"k", b"w", KEEPTTL, 0, False)
        self.assertEqual(unpack_record(self.store.data[b"k"]), (b"w", 5000))

    def test_incr_errors(self) -> None:
        self.apply(Op.SET, 0, b"k", b"abc", 0, 0, False)
        self.assertEqual(
            self.apply(Op.INCRBY, 0, b"k", 1),
            OpError("ERR", "value is not an integer or out of range"),
        )
        self.apply(Op.SET, 0, b"m", str(2**63 - 1).encode(), 0, 0, False)
        self.assertEqual(
            self.apply(Op.INCRBY, 0, b"m", 1),
            OpError("ERR", "increment or decrement would overflow"),
        )
        self.assertEqual(self.value(b"m"), str(2**63 - 1).encode())

    def test_del_counts_live_keys_once(self) -> None:
        self.apply(Op.MSET, 0, [b"a", b"1", b"b", b"2"])
        self.assertEqual(self.apply(Op.DEL, 0, [b"a", b"a", b"b", b"c"]), 2)
        self.assertEqual(self.store.data, {})

    def test_append_expire_persist(self) -> None:
        self.assertEqual(self.apply(Op.APPEND, 0, b"k", b"ab"), 2)
        self.assertEqual(self.apply(Op.APPEND, 0, b"k", b"cd"), 4)
        self.assertEqual(self.apply(Op.EXPIREAT, 0, b"k", 100, ""), 1)
        self.assertEqual(self.apply(Op.EXPIREAT, 0, b"k", 200, "NX"), 0)
        self.assertEqual(self.apply(Op.PERSIST, 0, b"k"), 1)
        self.assertEqual(self.apply(Op.PERSIST, 0, b"k"), 0)
        self.assertEqual(self.apply(Op.EXPIREAT, 50, b"k", 10, ""), 1)
        self.assertNotIn(b"k", self.store.data)
        self.assertEqual(self.apply(Op.EXPIREAT, 0, b"missing", 10, ""), 0)

    def test_sweep_only_deletes_expired(self) -> None:
        self.apply(Op.SET, 0, b"a", b"1", 100, 0, False)
        self.apply(Op.SET, 0, b"b", b"1", 0, 0, False)
        self.assertEqual(self.apply(Op.EXPIRE_SWEEP, 150, [b"a", b"b"]), 1)
        self.assertEqual(list(self.store.data), [b"b"])

    def test_flushall_and_malformed(self) -> None:
        self.apply(Op.MSET, 0, [b"a", b"1", b"b", b"2"])
        self.assertEqual(self.apply(Op.FLUSHALL, 0), OK)
        self.assertEqual(self.store.data, {})
        result, writes = self.sm.apply(b"\xc1garbage")
        self.assertEqual((result, writes), (OpError("ERR", "malformed operation"), []))
        # Right opcode, wrong arguments: an error reply, not a crashed apply.
        result, writes = self.sm.apply(encode_op(Op.SET, 0, b"k"))
        self.assertEqual((result, writes), (OpError("ERR", "malformed operation"), []))

    def test_member_announcement(self) -> None:
        self.assertEqual(self.apply(Op.MEMBER, 0, 2, "127.0.0.1:6381"), OK)
        self.assertEqual(self.sm.resp_addresses, {2: "127.0.0.1:6381"})
        self.assertEqual(self.store.meta, {b"resp:2": b"127.0.0.1:6381"})


class LogTimeTests(StateMachineTests):
    """Expiry by the log's time: the largest leader stamp applied so far."""

    def test_log_time_never_goes_back(self) -> None:
        self.apply(Op.SET, 5000, b"a", b"v", 0, 0, False)
        # An entry stamped by a leader whose clock is behind.
        self.apply(Op.SET, 3000, b"b", b"v", relative(1000), 0, False)
        self.assertEqual(self.sm.log_time, 5000)
        self.assertEqual(unpack_record(self.store.data[b"b"])[1], 6000)

    def test_relative_ttls_count_from_the_entry_time(self) -> None:
        self.apply(Op.SET, 10_000, b"k", b"v", relative(2500), 0, False)
        self.assertEqual(unpack_record(self.store.data[b"k"])[1], 12_500)
        self.assertEqual(self.apply(Op.EXPIREAT, 11_000, b"k", relative(100), ""), 1)
        self.assertEqual(unpack_record(self.store.data[b"k"])[1], 11_100)
        self.assertEqual(self.apply(Op.EXPIREAT, 11_000, b"k", relative(-1), ""), 1)
        self.assertNotIn(b"k", self.store.data)

    def test_a_tick_expires_keys_everywhere(self) -> None:
        self.apply(Op.SET, 1000, b"k", b"v", relative(500), 0, False)
        self.apply(Op.TICK, 1400)
        self.assertEqual(self.value(b"k", self.sm.log_time), b"v")
        self.apply(Op.TICK, 1500)
        self.assertIsNone(self.value(b"k", self.sm.log_time))

    def test_log_time_is_replicated_state(self) -> None:
        self.apply(Op.TICK, 7777)
        fresh = KVStateMachine(self.store)
        fresh.load_time()
        self.assertEqual(fresh.log_time, 7777)

    def test_stamp_replaces_the_time_only(self) -> None:
        data = encode_op(Op.SET, 5, b"k", b"v" * 300, relative(10), 0, False)
        stamped = stamp_op(data, 123_456_789)
        self.assertEqual(
            msgpack.unpackb(stamped), [1, 123_456_789, b"k", b"v" * 300, [10], 0, False]
        )
        # An operation written by an older version (smallest int encoding).
        old = msgpack.packb([1, 5, b"k", b"v", 0, 0, False])
        self.assertEqual(msgpack.unpackb(stamp_op(old, 99))[:2], [1, 99])
        self.assertEqual(stamp_op(b"\xc1", 99), b"\xc1")

    def test_an_exception_inside_apply_stops_the_node(self) -> None:
        """A bug while applying must not be skipped (the other replicas may
        not hit it): fail-stop, unlike a malformed entry, which is answered
        with an error on every replica."""

        def broken(key: bytes) -> bytes | None:
            raise KeyError(key)

        self.store.get_record = broken  # type: ignore[method-assign]
        with self.assertRaises(ApplyError):
            self.sm.apply(encode_op(Op.INCRBY, 0, b"k", 1))
        result, writes = self.sm.apply(encode_op(Op.INCRBY, 0, b"k"))
        self.assertEqual((result, writes), (OpError("ERR", "malformed operation"), []))


class OpErrorTests(unittest.TestCase):
    def test_forwarded_results_keep_the_error(self) -> None:
        """A forwarded write's result crosses msgpack as the wire form every
        version understands, and comes back as the same error."""
        err = OpError("MOVED", "3999 127.0.0.1:7002")
        self.assertEqual(str(err), "MOVED 3999 127.0.0.1:7002")
        wire = msgpack.unpackb(msgpack.packb(err.to_wire(), use_bin_type=True), raw=False)
        self.assertEqual(wire, {"err": "MOVED 3999 127.0.0.1:7002"})
        self.assertEqual(OpError.from_wire(wire), err)

    def test_other_results_are_no_errors(self) -> None:
        for result in (None, b"v", "OK", 3, [b"err"], {"err": 1}, {"err": "x", "y": "z"}):
            self.assertIsNone(OpError.from_wire(result), result)


class HelpersTests(unittest.TestCase):
    def test_parse_int_is_strict(self) -> None:
        self.assertEqual(parse_int(b"-12"), -12)
        for bad in (b"", b"+1", b" 1", b"01", b"-0", b"1.0", b"99999999999999999999"):
            self.assertIsNone(parse_int(bad), bad)

    def test_glob(self) -> None:
        cases = [
            (b"*", b"anything", True),
            (b"h?llo", b"hallo", True),
            (b"h*llo", b"heeello", True),
            (b"h[ae]llo", b"hillo", False),
            (b"h[^e]llo", b"hallo", True),
            (b"h[^e]llo", b"hello", False),
            (b"h[a-b]llo", b"hbllo", True),
            (b"a\\*b", b"a*b", True),
            (b"a\\*b", b"axb", False),
            (b"user:*", b"user:1\nx", True),
        ]
        for pattern, text, expected in cases:
            self.assertEqual(Glob(pattern).match(text), expected, (pattern, text))
