"""Fake databases for storage tests: recording, blocking and crashing ones."""

from __future__ import annotations

import threading
from typing import Any

from eraft_twisted.storage.db import DB, DBSnapshot, WriteBatch
from eraft_twisted.storage.memorydb import MemoryDB
from eraft_twisted.storage.writer import Op


class RecordingBatch:
    def __init__(self, db: RecordingDB, sync: bool) -> None:
        self.db = db
        self.sync = sync
        self.ops: list[Op] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.ops.append((key, value))

    def delete(self, key: bytes) -> None:
        self.ops.append((key, None))

    def write(self) -> None:
        self.db.entered.set()
        if not self.db.gate.wait(10):
            raise RuntimeError("test gate never opened")
        if self.db.fail_on is not None and any(k == self.db.fail_on for k, _ in self.ops):
            raise OSError("disk on fire")
        self.db.batches.append((self.sync, list(self.ops)))
        self.db.inner._apply(self.ops)


class RecordingDB:
    """A MemoryDB that records every batch and can hold the writer inside a write."""

    def __init__(self) -> None:
        self.inner = MemoryDB()
        self.batches: list[tuple[bool, list[Op]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_on: bytes | None = None

    def write_batch(self, *, sync: bool = False) -> RecordingBatch:
        return RecordingBatch(self, sync)

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        return self.inner.get(key, default)


class Crash(Exception):
    """A simulated process death at a write."""


class _CrashingBatch:
    def __init__(self, owner: CrashingDB, batch: WriteBatch) -> None:
        self.owner = owner
        self.batch = batch

    def put(self, key: bytes, value: bytes) -> None:
        self.batch.put(key, value)

    def delete(self, key: bytes) -> None:
        self.batch.delete(key)

    def write(self) -> None:
        self.owner.tick()
        self.batch.write()


class CrashingDB:
    """Wraps a DB; once armed, the ``crash_at``-th write and all later ones fail.

    A failed write does not happen, so what is left is what a process
    dying just before that write would leave.
    """

    def __init__(self, db: DB, crash_at: int) -> None:
        self.db = db
        self.crash_at = crash_at
        self.writes = 0
        self.armed = False
        self.crashed = False

    def tick(self) -> None:
        if not self.armed:
            return
        self.writes += 1
        if self.writes >= self.crash_at:
            self.crashed = True
            raise Crash(f"crash at write {self.writes}")

    def write_batch(self, *, sync: bool = False) -> _CrashingBatch:
        return _CrashingBatch(self, self.db.write_batch(sync=sync))

    def put(self, key: bytes, value: bytes, sync: bool = False) -> None:
        self.tick()
        self.db.put(key, value, sync=sync)

    def delete(self, key: bytes, sync: bool = False) -> None:
        self.tick()
        self.db.delete(key, sync=sync)

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        return self.db.get(key, default)

    def iterator(self, **kw: Any) -> Any:
        return self.db.iterator(**kw)

    def snapshot(self) -> DBSnapshot:
        return self.db.snapshot()

    def close(self) -> None:
        self.db.close()
