"""Redis Cluster key -> hash slot mapping.

``slot = CRC16(key) mod 16384`` with CRC16/XMODEM (polynomial 0x1021,
initial value 0, no reflection), where ``key`` is replaced by its *hash
tag* when it has one: the bytes between the first ``{`` and the first
``}`` after it, if that is not empty. Keys sharing a tag share a slot,
so multi-key commands on ``{user1000}.following`` and
``{user1000}.followers`` stay in one shard.

A leaf module: it imports nothing from the project.
"""

from __future__ import annotations

from binascii import crc_hqx

SLOTS = 16384
"""Number of hash slots, as in Redis Cluster."""

MAX_SLOT = SLOTS - 1


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


CRC16_TABLE = _make_table()
"""The 256-entry table of CRC16/XMODEM (polynomial 0x1021)."""


def crc16_table(data: bytes) -> int:
    """CRC16/XMODEM of ``data`` computed from :data:`CRC16_TABLE` in Python.

    Kept as the readable reference; :func:`crc16` gives the same result
    several times faster.
    """
    crc = 0
    table = CRC16_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ b]
    return crc


def crc16(data: bytes) -> int:
    """CRC16/XMODEM of ``data`` (``crc16(b"123456789") == 0x31C3``)."""
    # binascii.crc_hqx is the same table-driven CRC (CCITT polynomial,
    # caller-chosen initial value), implemented in C.
    return crc_hqx(data, 0)


def hash_tag(key: bytes) -> bytes:
    """The part of ``key`` that is hashed: its non-empty ``{tag}`` or the whole key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_hash_slot(key: bytes) -> int:
    """The Redis Cluster hash slot (0..16383) of ``key``."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) & MAX_SLOT
