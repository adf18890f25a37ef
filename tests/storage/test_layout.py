"""Tests for the key layout and value encodings."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.hashslot import key_hash_slot
from eraft_twisted.raft.types import NONE, ConfState, Entry, EntryType, HardState, SnapshotMeta
from eraft_twisted.storage import layout as L


class LogKeyTests(SynchronousTestCase):
    def test_numeric_order(self) -> None:
        indexes = [0, 1, 9, 10, 255, 256, 65535, 65536, 2**40, 2**63]
        keys = [L.log_key(i) for i in indexes]
        self.assertEqual(sorted(keys), keys)
        self.assertEqual([L.log_index(k) for k in keys], indexes)
        self.assertTrue(all(k.startswith(L.LOG_PREFIX) and len(k) == 9 for k in keys))

    def test_entry_roundtrip(self) -> None:
        for e in [
            Entry(0, 0),
            Entry(7, 42, EntryType.CONF_CHANGE, b"\x00cc"),
            Entry(2**40, 2**50, EntryType.NOOP, b""),
            Entry(3, 4, EntryType.NORMAL, bytes(range(256)) * 10),
        ]:
            value = L.encode_entry(e)
            self.assertEqual(L.decode_entry(e.index, value), e)
        self.assertLess(len(L.encode_entry(Entry(1, 1, EntryType.NORMAL, b"x"))), 8)


class StateEncodingTests(SynchronousTestCase):
    def test_roundtrips(self) -> None:
        for hs in [HardState(), HardState(5, NONE, 3), HardState(9, 2, 2**40)]:
            self.assertEqual(L.decode_hard_state(L.encode_hard_state(hs)), hs)
        for cs in [ConfState(), ConfState((1, 2, 3), (4,))]:
            self.assertEqual(L.decode_conf_state(L.encode_conf_state(cs)), cs)
        meta = SnapshotMeta(10, 3, ConfState((1,), (2, 3)))
        self.assertEqual(L.decode_snapshot_meta(L.encode_snapshot_meta(meta)), meta)
        self.assertEqual(L.decode_applied(L.encode_applied(7, 2)), (7, 2))
        items = [(b"Sd\x00\x01a", b"1"), (b"Smx", b"")]
        self.assertEqual(L.decode_items(L.encode_items(items)), items)
        self.assertEqual(L.decode_items(L.encode_items([])), [])
        self.assertTrue(L.encode_items([]), "an empty payload is not empty bytes")


class DataKeyTests(SynchronousTestCase):
    def test_data_key(self) -> None:
        k = L.data_key(b"foo")
        self.assertEqual(k, b"Sd" + (12182).to_bytes(2, "big") + b"foo")
        self.assertEqual(L.user_key(k), b"foo")
        self.assertEqual(L.slot_of(k), 12182)
        self.assertTrue(L.is_state_machine_key(k))
        self.assertTrue(L.is_state_machine_key(L.sm_meta_key(b"x")))
        self.assertFalse(L.is_state_machine_key(L.HARD_STATE_KEY))
        self.assertEqual(L.user_key(L.data_key(b"")), b"")

    def test_data_range(self) -> None:
        rng = random.Random(1)
        keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) for _ in range(500)]
        for lo, hi in [(0, 16383), (0, 0), (100, 5000), (16383, 16383), (12182, 12182)]:
            start, stop = L.data_range(lo, hi)
            for key in keys + [b"foo"]:
                inside = start <= L.data_key(key) < stop
                self.assertEqual(inside, lo <= key_hash_slot(key) <= hi, (key, lo, hi))
        self.assertRaises(ValueError, L.data_range, 5, 4)
        self.assertRaises(ValueError, L.data_range, -1, 4)
        self.assertRaises(ValueError, L.data_range, 0, 16384)

    def test_areas_disjoint(self) -> None:
        """Each area is one contiguous range that no other area's keys fall into."""
        s_stop = L.prefix_stop(L.SM_PREFIX)
        for key in [L.log_key(2**64 - 1), L.HARD_STATE_KEY, L.staging_key(L.data_key(b"a"))]:
            self.assertFalse(L.SM_PREFIX <= key < s_stop)
        self.assertLess(L.data_range(0, 16383)[1], L.SM_META_PREFIX)
        self.assertEqual(L.prefix_stop(b"a\xff\xff"), b"b")
        self.assertRaises(ValueError, L.prefix_stop, b"\xff")
