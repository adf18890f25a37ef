"""Sorted set operations: per member a row ``b'm' + member`` -> score, and an index row ``b's' + sortable score (8 bytes) + member`` -> empty, so ranges by score are one ordered scan."""

from __future__ import annotations

from .collection import DataOps


class ZSetOps(DataOps):
    """(filled in by the zsets work)"""
