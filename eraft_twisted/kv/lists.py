"""List operations: one row per element, sub key = its position (8 bytes, big-endian, offset by 2**63 so order is numeric), between the metadata's head (first) and tail (one past the last)."""

from __future__ import annotations

from .collection import DataOps


class ListOps(DataOps):
    """(filled in by the lists work)"""
