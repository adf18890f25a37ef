"""Errors of the storage layer."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of storage errors."""


class StorageLocked(StorageError):
    """Another process (or opening) holds the data directory."""

    def __init__(self, path: str) -> None:
        super().__init__(f"data directory {path} is in use by another process")
        self.path = path


class StorageCorrupt(StorageError):
    """The data directory does not hold a valid eraft-twisted database."""


class StorageFailed(StorageError):
    """An earlier write failed; what is on disk is unknown, the node must stop."""
