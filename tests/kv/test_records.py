"""Record encoding, named operations in the log, and the merged row view."""

from __future__ import annotations

import msgpack
from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.kv.records import (
    KeyType,
    Meta,
    is_live,
    pack_string,
    record_expire,
    record_rev,
    record_type,
    string_value,
    unpack_meta,
    with_expire,
)
from eraft_twisted.kv.results import WrongType
from eraft_twisted.kv.statemachine import Op, encode_op, live_value, stamp_op
from eraft_twisted.storage.db import merge_changes


class RecordTests(SynchronousTestCase):
    def test_a_string_written_before_types_still_reads(self) -> None:
        legacy = (5000).to_bytes(8, "big") + b"value"
        self.assertEqual(record_type(legacy), KeyType.STRING)
        self.assertEqual((string_value(legacy), record_expire(legacy)), (b"value", 5000))
        self.assertEqual(record_rev(legacy), 0)
        self.assertFalse(is_live(legacy, 5000))
        self.assertTrue(is_live(legacy, 4999))
        moved = with_expire(legacy, 0, 7)
        self.assertEqual(
            (string_value(moved), record_expire(moved), record_rev(moved)), (b"value", 0, 7)
        )

    def test_tagged_strings_and_collections(self) -> None:
        rec = pack_string(b"\xff\x00v", 12, 3)
        self.assertEqual(
            (record_type(rec), string_value(rec), record_rev(rec)),
            (KeyType.STRING, b"\xff\x00v", 3),
        )
        for kind in (KeyType.HASH, KeyType.SET, KeyType.ZSET, KeyType.LIST):
            meta = Meta(
                kind,
                99,
                4,
                2,
                10,
                16383,
                -3 if kind == KeyType.LIST else 0,
                7 if kind == KeyType.LIST else 0,
            )
            packed = meta.pack()
            self.assertEqual(record_type(packed), kind)
            self.assertEqual(unpack_meta(packed), meta)
            self.assertEqual(record_expire(packed), 99)
            self.assertEqual(unpack_meta(with_expire(packed, 0, 5)), meta.changed(5, expire_at=0))
            self.assertRaises(WrongType, live_value, packed, 0)

    def test_named_ops_carry_a_stamp_the_leader_can_replace(self) -> None:
        data = encode_op("hset", 10, b"k", [b"f", b"v"])
        self.assertEqual(msgpack.unpackb(stamp_op(data, 77)), ["hset", 77, b"k", [b"f", b"v"]])
        old = encode_op(Op.SET, 10, b"k", b"v", 0, 0, False)
        self.assertEqual(msgpack.unpackb(stamp_op(old, 5))[:2], [int(Op.SET), 5])
        long_name = encode_op("zremrangebyscore", 1, b"k")
        self.assertEqual(msgpack.unpackb(stamp_op(long_name, 9))[1], 9)


class MergeTests(SynchronousTestCase):
    def test_changes_replace_add_and_delete(self) -> None:
        base = [(b"a", b"1"), (b"c", b"3"), (b"e", b"5")]
        changes = {b"b": b"2", b"c": None, b"e": b"55", b"f": b"6"}
        merged = list(merge_changes(iter(base), changes))
        self.assertEqual(merged, [(b"a", b"1"), (b"b", b"2"), (b"e", b"55"), (b"f", b"6")])
        backwards = list(merge_changes(iter(base[::-1]), changes, reverse=True))
        self.assertEqual(backwards, merged[::-1])
        self.assertEqual(list(merge_changes(iter([]), {b"x": None})), [])


class MixinTests(SynchronousTestCase):
    def test_no_two_operation_classes_define_the_same_name(self) -> None:
        """KVStateMachine inherits every type's operations: a helper of one
        type with the name of another's would silently replace it."""
        from eraft_twisted.kv.collection import DataOps
        from eraft_twisted.kv.statemachine import KVStateMachine

        owners: dict[str, str] = {}
        clashes = []
        for cls in KVStateMachine.__mro__:
            if cls in (KVStateMachine, DataOps, object) or not issubclass(cls, DataOps):
                continue
            for name in vars(cls):
                if name.startswith("__"):
                    continue
                if name in owners and owners[name] != cls.__name__:
                    clashes.append(f"{name}: {owners[name]} and {cls.__name__}")
                owners.setdefault(name, cls.__name__)
        self.assertEqual(clashes, [])
