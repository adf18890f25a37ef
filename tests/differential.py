"""Differential testing against a real ``redis-server``.

:class:`DifferentialCase` starts one ``redis-server`` (Debian's, no
persistence) and one one-node ``eraftkv`` group per test class; ``check``
sends the same commands to both over RESP2 and over RESP3 and asserts the
replies are the same, reply type included (a RESP3 set is not an array, a
double is not a bulk string). Maps and sets are compared without order
(Redis's order is its hash table's); error replies are compared whole.

Use a fresh key prefix per test (``self.key("x")``): both servers keep
their data for the whole class.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any, ClassVar

from twisted.trial import unittest

from eraft_twisted.testing.procs import free_ports

from .procs import Cluster

Reply = Any
"""A parsed reply: ``(type char, value)``; aggregates hold parsed replies."""


class RawConnection:
    """A blocking RESP connection that keeps each reply's type."""

    def __init__(self, port: int, protocol: int = 2, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if protocol == 3:
            hello = self.call(b"HELLO", b"3")
            if hello[0] == "-":
                raise RuntimeError(f"HELLO 3 refused: {hello}")

    def close(self) -> None:
        self.sock.close()

    def call(self, *args: bytes | str | int | float) -> Reply:
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        out = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(out)
        return self._reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def _reply(self) -> Reply:
        line = self._line()
        kind, rest = chr(line[0]), line[1:]
        if kind in "+-":
            return (kind, rest.decode("utf-8", "replace"))
        if kind in ":(":
            return (":", int(rest))
        if kind == ",":
            return (",", rest.decode())
        if kind == "#":
            return ("#", rest == b"t")
        if kind == "_":
            return ("_", None)
        if kind in "$=":
            n = int(rest)
            return ("$", None) if n < 0 else ("$", self._exact(n))
        if kind in "*~>":
            n = int(rest)
            if n < 0:
                return ("*", None)
            items = [self._reply() for _ in range(n)]
            if kind == "~":
                return ("~", tuple(sorted(items, key=repr)))
            return ("*", tuple(items))
        if kind == "%":
            n = int(rest)
            pairs = [(self._reply(), self._reply()) for _ in range(n)]
            return ("%", tuple(sorted(pairs, key=repr)))
        raise ValueError(f"unknown reply type {line!r}")


class _Servers:
    """One redis-server and one one-node eraftkv group for the whole test
    process (trial has no per-class set-up); stopped when it exits."""

    instance: ClassVar[_Servers | None] = None

    def __init__(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise unittest.SkipTest("redis-server is not installed")
        self.dir = tempfile.mkdtemp(prefix="eraft-diff-")
        (self.redis_port,) = free_ports(1)
        self.redis = subprocess.Popen(
            [
                server,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.cluster = Cluster(1).start()
        self.node_port = self.cluster.nodes[0].resp_port
        deadline = time.monotonic() + 20
        while True:
            try:
                RawConnection(self.redis_port).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        atexit.register(self.stop)

    def stop(self) -> None:
        self.cluster.stop()
        self.redis.terminate()
        self.redis.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    def get(cls) -> _Servers:
        if cls.instance is None:
            cls.instance = cls()
        return cls.instance


class DifferentialCase(unittest.TestCase):
    """A real redis-server and a one-node eraftkv group, shared by the
    tests of the process."""

    _names = itertools.count()

    def setUp(self) -> None:
        servers = _Servers.get()
        self.redis_port, self.node_port = servers.redis_port, servers.node_port
        self.conns = {
            (name, proto): RawConnection(port, proto)
            for name, port in (("redis", self.redis_port), ("eraft", self.node_port))
            for proto in (2, 3)
        }

    def tearDown(self) -> None:
        for conn in self.conns.values():
            conn.close()

    def key(self, name: str = "k") -> str:
        """A key no other test of the process uses."""
        return f"{name}:{os.getpid()}:{next(self._names)}"

    def both(self, *args: bytes | str | int | float, protocol: int = 2) -> tuple[Reply, Reply]:
        """(redis's reply, ours) to one command."""
        return (
            self.conns[("redis", protocol)].call(*args),
            self.conns[("eraft", protocol)].call(*args),
        )

    def check(self, *commands: tuple[bytes | str | int | float, ...]) -> list[Reply]:
        """Run each command on both servers, over RESP2 then RESP3 (each
        command once per protocol, in order), and assert equal replies.
        Returns Redis's RESP2 replies."""
        seen = []
        for protocol in (2, 3):
            for cmd in commands:
                theirs, ours = self.both(*cmd, protocol=protocol)
                self.assertEqual(
                    ours, theirs, f"RESP{protocol} {' '.join(map(str, cmd))!r}: ours != redis"
                )
                if protocol == 2:
                    seen.append(theirs)
        return seen
