"""The expiry property of a campaign: once a read saw a key expired, no
later read on any node returns it.

TTL keys that really expire cannot go into the register model of
:mod:`.linearizability` (a key turning nil with no delete is not a
register). Each such key is written once, acknowledged, and then only
read; a read that returns the value although another read had returned nil
before it began (in real time, on any node) is a violation.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

__all__ = ["ExpiryRecorder"]


@dataclass
class _Key:
    written_at: float
    """When the SET ... PX was acknowledged (the harness's monotonic clock)."""
    ttl_ms: int
    value: str
    reads: list[tuple[float, float, bool, str]] = field(default_factory=list)
    """(invoked, completed, saw the value?, where) of every answered read."""


class ExpiryRecorder:
    """Thread-safe record of the expiring keys and their reads."""

    def __init__(self, active: int = 4, lifetime: float = 12.0) -> None:
        self.active = active
        self.lifetime = lifetime
        self.keys: dict[str, _Key] = {}
        self._live: list[str] = []
        self._next = 0
        self._lock = threading.Lock()

    def new_key(self) -> str | None:
        """A fresh key to write, if fewer than ``active`` keys are live."""
        with self._lock:
            now = time.monotonic()
            self._live = [k for k in self._live if now - self.keys[k].written_at < self.lifetime]
            if len(self._live) >= self.active:
                return None
            self._next += 1
            return f"ce{self._next}"

    def written(self, key: str, value: str, ttl_ms: int, at: float) -> None:
        """The write of ``key`` was acknowledged at ``at``."""
        with self._lock:
            self.keys[key] = _Key(at, ttl_ms, value)
            self._live.append(key)

    def pick(self, choose: float) -> str | None:
        """A live key to read (``choose`` in [0, 1) picks which)."""
        with self._lock:
            if not self._live:
                return None
            return self._live[int(choose * len(self._live)) % len(self._live)]

    def read(self, key: str, invoked: float, completed: float, value: object, where: str) -> None:
        """An answered GET of ``key``: ``value`` as the client decoded it."""
        with self._lock:
            k = self.keys.get(key)
            if k is None or invoked < k.written_at:
                return  # not after the acknowledged write: says nothing
            if value is not None and value != k.value and value != k.value.encode():
                k.reads.append((invoked, completed, True, f"{where} (unexpected {value!r})"))
                return
            k.reads.append((invoked, completed, value is not None, where))

    def problems(self) -> list[str]:
        """Every key a read returned after another read saw it expired."""
        out = []
        with self._lock:
            keys = dict(self.keys)
        for name, k in sorted(keys.items()):
            expired = [r for r in k.reads if not r[2]]
            if not expired:
                continue
            first = min(expired, key=lambda r: r[1])
            later = [r for r in k.reads if r[2] and r[0] > first[1]]
            if later:
                r = later[0]
                out.append(
                    f"expiring key {name} (PX {k.ttl_ms}) read on {r[3]} "
                    f"{r[0] - first[1]:.3f}s after a read on {first[3]} had seen it expired"
                )
            wrong = [r for r in k.reads if "unexpected" in r[3]]
            if wrong:
                out.append(f"expiring key {name}: read {wrong[0][3]}")
        return out

    def counts(self) -> tuple[int, int, int]:
        """(keys written, reads that saw a value, reads that saw it expired)."""
        with self._lock:
            reads = [r for k in self.keys.values() for r in k.reads]
            return len(self.keys), sum(1 for r in reads if r[2]), sum(1 for r in reads if not r[2])
