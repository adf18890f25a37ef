"""Benchmark the RESP request parser: pure Python vs hiredis-assisted framing.

Usage: .venv/bin/python bench/resp_parser.py [--seconds 0.5]

Each workload is a byte stream cut into chunks the way a socket delivers it
(Twisted reads at most 64 KiB at a time); the parser is fed chunk by chunk
and drained after each feed. Prints commands/s for both modes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

# Runnable from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eraft_twisted.resp.parser import RespParser  # noqa: E402


def multibulk(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def chunked(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def workloads() -> list[tuple[str, list[bytes], int]]:
    """(name, chunks, commands in the stream)."""
    out: list[tuple[str, list[bytes], int]] = []

    n = 20000
    sets = b"".join(multibulk(b"SET", b"key:%d" % i, b"value-%d" % i) for i in range(n))
    out.append(("SET k v, pipelined, 64 KiB reads", chunked(sets, 65536), n))
    gets = b"".join(multibulk(b"GET", b"key:%d" % i) for i in range(n))
    out.append(("GET k, pipelined, 64 KiB reads", chunked(gets, 65536), n))
    out.append(("GET k, pipelined, 1500 B reads", chunked(gets, 1500), n))
    one = [multibulk(b"GET", b"key:%d" % i) for i in range(n)]
    out.append(("GET k, one command per read", one, n))

    m = 2000
    mset_args = [b"MSET"]
    for i in range(50):
        mset_args += [b"key:%d" % i, b"v%d" % i]
    mset = multibulk(*mset_args) * m
    out.append(("MSET 50 pairs, pipelined, 64 KiB reads", chunked(mset, 65536), m))

    big = b"x" * 16384
    bigs = b"".join(multibulk(b"SET", b"key:%d" % i, big) for i in range(m))
    out.append(("SET k <16 KiB>, pipelined, 64 KiB reads", chunked(bigs, 65536), m))

    tricky = b"".join(multibulk(b"SET", b"key:%d" % i, b"*12345") for i in range(n))
    out.append(("SET k '*12345' (looks like a big array)", chunked(tricky, 65536), n))

    inline = b"".join(b"GET key:%d\r\n" % i for i in range(n))
    out.append(("inline GET k, pipelined, 64 KiB reads", chunked(inline, 65536), n))
    return out


def run_once(chunks: list[bytes], use_hiredis: bool) -> int:
    parser = RespParser(use_hiredis=use_hiredis)
    feed = parser.feed
    nxt = parser.next_command
    count = 0
    for chunk in chunks:
        feed(chunk)
        while nxt() is not None:
            count += 1
    return count


def measure(fn: Callable[[], int], seconds: float) -> float:
    """Best commands/s over repeated runs lasting about ``seconds`` in total."""
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        count = fn()
        dt = time.perf_counter() - t0
        best = max(best, count / dt)
        if time.perf_counter() > deadline:
            return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    opts = ap.parse_args()
    print(f"{'workload':45} {'python cmd/s':>14} {'hiredis cmd/s':>14} {'ratio':>6}")
    for name, chunks, expected in workloads():
        for mode in (False, True):
            got = run_once(chunks, mode)
            assert got == expected, (name, mode, got, expected)
        py = measure(lambda c=chunks: run_once(c, False), opts.seconds)
        hr = measure(lambda c=chunks: run_once(c, True), opts.seconds)
        print(f"{name:45} {py:14,.0f} {hr:14,.0f} {hr / py:6.2f}")


if __name__ == "__main__":
    main()
