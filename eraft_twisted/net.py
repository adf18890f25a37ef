"""Addresses and TCP: ``host:port`` parsing, listening endpoint strings, TCP_NODELAY.

Shared by the RESP, AMP and HTTP layers; imports nothing from the project.
"""

from __future__ import annotations


def parse_address(addr: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); raises ValueError with a clear message."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad address {addr!r}: expected host:port")
    return host, int(port)


def tcp_endpoint(address: str) -> str:
    """``host:port`` -> a listening strports description (IPv6 hosts escaped)."""
    host, port = parse_address(address)
    host = host.strip("[]").replace(":", "\\:")
    return f"tcp:{port}:interface={host}"


def no_delay(transport: object) -> None:
    """Turn Nagle's algorithm off, as Redis does: requests, replies and raft
    messages are small and latency-bound, and with Nagle on a small write
    can wait for the peer's delayed ACK (up to 40 ms on Linux)."""
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        set_no_delay(True)
