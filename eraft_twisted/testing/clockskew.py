"""Clock skew for real processes through libfaketime (Debian's ``faketime``).

Each skewed process reads its offset from a file of its own on every clock
call (``FAKETIME_NO_CACHE``), so a test or the campaign nemesis can move a
process's clock ahead or behind while it runs, as a bad NTP step would.
Both the wall clock and the monotonic clock move (libfaketime breaks
``time.sleep`` when only the wall clock is faked and an offset is negative).
"""

from __future__ import annotations

import glob
import os

_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)


def libfaketime() -> str | None:
    """The path of libfaketime's preload library, or None if not installed."""
    for path in _CANDIDATES:
        if os.path.exists(path):
            return path
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return found[0] if found else None


class SkewedClock:
    """The clock offset of one process, kept in ``path``."""

    def __init__(self, path: str, offset: float = 0.0) -> None:
        self.path = path
        self.offset = 0.0
        self.set(offset)

    def set(self, offset: float) -> None:
        """Move the process's clock to ``offset`` seconds from real time."""
        self.offset = offset
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{offset:+.3f}s\n")
        os.replace(tmp, self.path)  # never a half-written offset

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` plus what makes a child process use this clock."""
        lib = libfaketime()
        if lib is None:
            raise RuntimeError("libfaketime is not installed (Debian package: faketime)")
        env = dict(base)
        env["LD_PRELOAD"] = lib
        env["FAKETIME_TIMESTAMP_FILE"] = self.path
        env["FAKETIME_NO_CACHE"] = "1"
        env.pop("FAKETIME", None)
        return env
