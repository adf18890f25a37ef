"""Tests for eraft_twisted.hashslot against Redis Cluster's known values."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.hashslot import (
    CRC16_TABLE,
    SLOTS,
    crc16,
    crc16_table,
    hash_tag,
    key_hash_slot,
)


def crc16_bitwise(data: bytes) -> int:
    """CRC16/XMODEM one bit at a time: an independent reference."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


class CRC16Tests(SynchronousTestCase):
    def test_check_value(self) -> None:
        """The CRC16/XMODEM check value of '123456789' is 0x31C3."""
        self.assertEqual(crc16(b"123456789"), 0x31C3)
        self.assertEqual(crc16_table(b"123456789"), 0x31C3)
        self.assertEqual(crc16_bitwise(b"123456789"), 0x31C3)

    def test_table(self) -> None:
        self.assertEqual(len(CRC16_TABLE), 256)
        self.assertEqual(CRC16_TABLE[0], 0)
        self.assertEqual(CRC16_TABLE[1], 0x1021)

    def test_implementations_agree(self) -> None:
        rng = random.Random(7)
        for n in list(range(20)) + [100, 1000]:
            data = bytes(rng.randrange(256) for _ in range(n))
            want = crc16_bitwise(data)
            self.assertEqual(crc16(data), want)
            self.assertEqual(crc16_table(data), want)


class KeyHashSlotTests(SynchronousTestCase):
    def test_known_redis_values(self) -> None:
        """Values as returned by Redis's CLUSTER KEYSLOT."""
        self.assertEqual(key_hash_slot(b"foo"), 12182)
        self.assertEqual(key_hash_slot(b"bar"), 5061)
        self.assertEqual(key_hash_slot(b"hello"), 866)
        self.assertEqual(key_hash_slot(b"somekey"), 11058)
        self.assertEqual(key_hash_slot(b"foo{hash_tag}"), 2515)
        self.assertEqual(key_hash_slot(b""), 0)

    def test_hash_tag_same_slot(self) -> None:
        a = key_hash_slot(b"{user1000}.following")
        self.assertEqual(a, key_hash_slot(b"{user1000}.followers"))
        self.assertEqual(a, key_hash_slot(b"user1000"))

    def test_empty_tag_hashes_whole_key(self) -> None:
        """'foo{}{bar}': the first tag is empty, so the whole key is hashed."""
        self.assertEqual(hash_tag(b"foo{}{bar}"), b"foo{}{bar}")
        self.assertEqual(key_hash_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS)

    def test_first_open_first_close(self) -> None:
        """'foo{{bar}}zap' hashes '{bar' (first '{', first '}' after it)."""
        self.assertEqual(hash_tag(b"foo{{bar}}zap"), b"{bar")
        self.assertEqual(key_hash_slot(b"foo{{bar}}zap"), key_hash_slot(b"{bar"))
        self.assertEqual(hash_tag(b"foo{bar}{zap}"), b"bar")
        self.assertEqual(key_hash_slot(b"foo{bar}{zap}"), key_hash_slot(b"bar"))

    def test_unclosed_brace(self) -> None:
        self.assertEqual(hash_tag(b"foo{bar"), b"foo{bar")
        self.assertEqual(hash_tag(b"foo}bar{"), b"foo}bar{")
        self.assertEqual(key_hash_slot(b"foo{bar"), crc16(b"foo{bar") % SLOTS)

    def test_range(self) -> None:
        rng = random.Random(3)
        for _ in range(2000):
            key = bytes(rng.randrange(256) for _ in range(rng.randrange(30)))
            slot = key_hash_slot(key)
            self.assertTrue(0 <= slot < SLOTS)
            self.assertEqual(slot, crc16_bitwise(hash_tag(key)) % SLOTS)
