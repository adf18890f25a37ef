"""Plumbing shared by the fault-injection campaigns.

A timestamped :class:`EventLog`, :class:`Background` (a thread that runs
until stopped and keeps its exception), :func:`poll_until` (wait for a
condition with a deadline), :func:`seeded` and :func:`keep_artifacts` (what
a failed run leaves behind for a post-mortem).
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from .linearizability import History

__all__ = ["Background", "EventLog", "keep_artifacts", "poll_until", "seeded"]

T = TypeVar("T")


class EventLog:
    """Timestamped lines (seconds since the log was made), shared by threads."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def note(self, text: str) -> None:
        with self._lock:
            self.lines.append(f"{time.monotonic() - self.t0:8.3f} {text}")


class Background:
    """A daemon thread running :meth:`loop` until :meth:`stop`. An exception
    ends it; it is kept in ``error`` and noted in ``log``."""

    def __init__(self, name: str, log: EventLog) -> None:
        self.name = name
        self.log = log
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def loop(self) -> None:
        """The work; return when ``self._stop`` is set."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _main(self) -> None:
        try:
            self.loop()
        except BaseException as e:  # keep it for the report
            self.error = e
            self.log.note(f"{self.name} failed: {type(e).__name__}: {e}")


def poll_until(predicate: Callable[[], T], what: str, timeout: float, interval: float = 0.2) -> T:
    """Call ``predicate`` until it returns something true (returned) or
    ``timeout`` seconds pass (RuntimeError, naming ``what`` and the last
    exception the predicate raised, if any). The harness's threads use it;
    tests use ``tests.waiting.wait_until``, which fails the test instead."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # not there yet
            last = e
        if time.monotonic() >= deadline:
            why = f" (last error: {last!r})" if last is not None else ""
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}{why}")
        time.sleep(interval)


def seeded(seed: int | None) -> tuple[int, random.Random]:
    """``seed`` (a random one if None) and a generator seeded with it."""
    seed = random.randrange(2**32) if seed is None else seed
    return seed, random.Random(seed)


class KeepsLogs(Protocol):
    def keep_logs(self, dest: str) -> None: ...


def keep_artifacts(
    prefix: str,
    keep_dir: str | None,
    readme: str,
    cluster: KeepsLogs,
    history: History | None = None,
    log: list[str] | None = None,
) -> str:
    """A new directory under ``keep_dir`` (default: the temp directory)
    holding README.txt, the history, the event log and every process's log."""
    kept = tempfile.mkdtemp(prefix=prefix, dir=keep_dir)
    if history is not None:
        history.dump(os.path.join(kept, "history.json"))
    if log is not None:
        with open(os.path.join(kept, "nemesis.log"), "w") as f:
            f.write("\n".join(log) + "\n")
    with open(os.path.join(kept, "README.txt"), "w") as f:
        f.write(readme)
    cluster.keep_logs(kept)
    return kept
