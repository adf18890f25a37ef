"""Operations on keys of any type (RENAME, COPY, ...) and the remaining string ones."""

from __future__ import annotations

from .collection import DataOps


class KeyOps(DataOps):
    """(filled in by the keys work)"""
