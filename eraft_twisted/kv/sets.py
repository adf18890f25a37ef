"""Set operations: one row per member (sub key = member, empty value)."""

from __future__ import annotations

from .collection import DataOps


class SetOps(DataOps):
    """(filled in by the sets work)"""
