"""Small TCP helpers shared by the RESP and AMP layers."""

from __future__ import annotations

from typing import Any


def no_delay(transport: Any) -> None:
    """Turn Nagle's algorithm off, as Redis does: requests, replies and raft
    messages are small and latency-bound, and with Nagle on a small write
    can wait for the peer's delayed ACK (up to 40 ms on Linux)."""
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        set_no_delay(True)
