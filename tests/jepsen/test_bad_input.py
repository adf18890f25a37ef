"""Bad RESP input against a live node, over raw sockets.

Every test runs while a bystander client keeps doing SET/GET/INCR on its own
connection: the node must stay up, answer malformed input the way Redis
does (``-ERR Protocol error: ...`` and a close), and the bystander must see
no error and no long stall.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import struct
import threading
import time

import redis
from twisted.trial import unittest

from eraft_twisted.testing.kvgroup import KVGroup
from tests.waiting import wait_until

# The bystander's worst acceptable latency (the machine may be busy).
MAX_STALL = 3.0


def resp(*args: bytes | str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Bystander:
    """A well-behaved client running alongside the abuse."""

    def __init__(self, port: int) -> None:
        self.client = redis.Redis(port=port, socket_timeout=10, protocol=2)
        self.errors: list[str] = []
        self.ops = 0
        self.worst = 0.0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            t0 = time.monotonic()
            try:
                self.client.set("bystander", n)
                got = self.client.get("bystander")
                self.client.incr("bystander:ctr")
                if got != str(n).encode():
                    self.errors.append(f"read {got!r} after writing {n}")
            except redis.RedisError as e:
                self.errors.append(f"{type(e).__name__}: {e}")
            self.worst = max(self.worst, time.monotonic() - t0)
            self.ops += 1
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=30)
        self.client.close()


class Node:
    """One shared single-node group for the whole module (stopped at exit)."""

    cluster: KVGroup | None = None

    @classmethod
    def get(cls) -> KVGroup:
        if cls.cluster is None:
            cls.cluster = KVGroup(1, proxies=False).start()
            atexit.register(shutil.rmtree, cls.cluster.dir, True)
            atexit.register(cls.cluster.stop)
            cls.cluster.leader()
        return cls.cluster


class BadInput(unittest.TestCase):
    def setUp(self) -> None:
        self.cluster = Node.get()
        self.node = self.cluster.nodes[0]
        self.port = self.node.resp_port
        self.bystander = Bystander(self.port)
        self.bystander.thread.start()

    def tearDown(self) -> None:
        ops = self.bystander.ops
        wait_until(
            lambda: self.bystander.ops >= ops + 3 or self.bystander.errors,
            timeout=MAX_STALL * 3,
            interval=0.02,
            message="a few more bystander rounds",
        )
        self.bystander.stop()
        self.assertTrue(self.node.alive, "the node died:\n" + self.node.tail_log())
        self.assertEqual(self.bystander.errors, [])
        self.assertGreater(self.bystander.ops, 0, "the bystander made no progress")
        self.assertLess(self.bystander.worst, MAX_STALL)
        c = redis.Redis(port=self.port, socket_timeout=5)
        self.assertTrue(c.ping())
        c.close()

    # -- helpers -----------------------------------------------------------
    def connect(self, timeout: float = 5.0) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        self.addCleanup(s.close)
        return s

    def exchange(self, payload: bytes, wait: float = 2.0) -> tuple[bytes, bool]:
        """Send ``payload``; what came back within ``wait`` s, and whether
        the node closed the connection."""
        s = self.connect(wait)
        try:
            s.sendall(payload)
        except OSError:
            pass  # the node may close while we are still sending
        data = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except OSError:
                return data, True
            if not chunk:
                return data, True
            data += chunk
        return data, False

    def assertProtocolError(self, payload: bytes, reason: bytes) -> None:
        data, closed = self.exchange(payload)
        self.assertEqual(data, b"-ERR Protocol error: " + reason + b"\r\n")
        self.assertTrue(closed, "the connection stayed open after a protocol error")

    def read_replies(self, s: socket.socket, count: int, timeout: float = 30.0) -> list[bytes]:
        """``count`` simple replies (one line each, or a short bulk)."""
        buf = b""
        out: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
            pos = 0
            while len(out) < count:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                if buf[pos : pos + 1] == b"$" and buf[pos + 1 : end] != b"-1":
                    size = int(buf[pos + 1 : end])
                    if len(buf) < end + 2 + size + 2:
                        break
                    out.append(buf[pos : end + 2 + size + 2])
                    pos = end + 2 + size + 2
                else:
                    out.append(buf[pos : end + 2])
                    pos = end + 2
            buf = buf[pos:]
        return out

    # -- the cases -----------------------------------------------------------
    def test_huge_declared_bulk_lengths(self) -> None:
        self.assertProtocolError(b"*2\r\n$3\r\nGET\r\n$99999999999\r\n", b"invalid bulk length")
        self.assertProtocolError(b"*2\r\n$3\r\nGET\r\n$536870913\r\n", b"invalid bulk length")
        self.assertProtocolError(
            b"*2\r\n$3\r\nGET\r\n$99999999999999999999999\r\n", b"invalid bulk length"
        )

    def peak_growth(self, before: int, seconds: float = 1.0) -> int:
        """The most the node's RSS grew above ``before`` (KiB) over ``seconds``."""
        peak = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            peak = max(peak, self.node.rss_kb() - before)
            time.sleep(0.05)
        return peak

    def test_large_declared_bulks_do_not_reserve_memory(self) -> None:
        """20 connections each promise a 500 MB argument and send 1 KiB."""
        before = self.node.rss_kb()
        socks = []
        for _ in range(20):
            s = self.connect()
            s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n" + b"x" * 1024)
            socks.append(s)
        grown = self.peak_growth(before)
        self.assertLess(grown, 200 * 1024, f"RSS grew by {grown} KiB")
        for s in socks:
            s.close()

    def test_huge_multibulk_counts(self) -> None:
        self.assertProtocolError(b"*2147483647\r\n", b"invalid multibulk length")
        self.assertProtocolError(b"*1048577\r\n", b"invalid multibulk length")
        before = self.node.rss_kb()
        socks = []
        for _ in range(20):
            s = self.connect()
            s.sendall(b"*1048576\r\n$3\r\nSET\r\n")
            socks.append(s)
        grown = self.peak_growth(before)
        self.assertLess(grown, 200 * 1024, f"RSS grew by {grown} KiB")

    def test_negative_lengths(self) -> None:
        # Like Redis: a null or negative array is an empty request, skipped.
        data, closed = self.exchange(b"*-1\r\n*-5\r\n*0\r\nPING\r\n", wait=1.0)
        self.assertEqual(data, b"+PONG\r\n")
        self.assertFalse(closed)
        self.assertProtocolError(b"*1\r\n$-1\r\n", b"invalid bulk length")
        self.assertProtocolError(b"*1\r\n$-5\r\n", b"invalid bulk length")
        self.assertProtocolError(b"*2\r\n$3\r\nGET\r\n$-2147483649\r\n", b"invalid bulk length")

    def test_deep_nesting(self) -> None:
        self.assertProtocolError(b"*1\r\n" * 100_000, b"expected '$', got '*'")
        self.assertProtocolError(b"*1\r\n*1\r\n$4\r\nPING\r\n", b"expected '$', got '*'")

    def test_junk_and_long_inline_lines(self) -> None:
        data, closed = self.exchange(b"x" * (200 * 1024))
        self.assertEqual(data, b"-ERR Protocol error: too big inline request\r\n")
        self.assertTrue(closed)
        data, closed = self.exchange(bytes(range(256)) * 4000)
        self.assertTrue(data.startswith(b"-ERR"), data[:100])
        self.assertTrue(closed)

    def test_binary_keys_and_values(self) -> None:
        s = self.connect()
        keys = [
            bytes(range(256)),
            b"\r\n*1\r\n$3\r\nDEL\r\n",
            b"",
            b"\x00" * 1000,
            os.urandom(64 * 1024),
        ]
        values = [os.urandom(100), b"\r\n", b"", bytes(range(256)) * 4096, b"\x00"]
        for key, value in zip(keys, values, strict=True):
            s.sendall(resp("SET", key, value) + resp("GET", key) + resp("EXISTS", key))
            ok, got, exists = self.read_replies(s, 3)
            self.assertEqual(ok, b"+OK\r\n")
            self.assertEqual(got, b"$%d\r\n%s\r\n" % (len(value), value))
            self.assertEqual(exists, b":1\r\n")
        s.sendall(b"".join(resp("DEL", k) for k in keys))
        self.assertEqual(self.read_replies(s, len(keys)), [b":1\r\n"] * len(keys))
        c = redis.Redis(port=self.port, socket_timeout=5)
        c.set(bytes(range(256)), bytes(range(255, -1, -1)))
        self.assertEqual(c.get(bytes(range(256))), bytes(range(255, -1, -1)))
        c.close()

    def test_10000_pipelined_commands_in_one_write(self) -> None:
        s = self.connect(timeout=60)
        key = f"pipe:{time.monotonic_ns()}"
        payload = resp("INCR", key) * 10_000
        t0 = time.monotonic()
        s.sendall(payload)
        replies = self.read_replies(s, 10_000, timeout=60)
        elapsed = time.monotonic() - t0
        self.assertEqual(replies, [b":%d\r\n" % i for i in range(1, 10_001)])
        # Mixed reads and writes, also in order.
        payload = b"".join(
            resp("SET", f"{key}:{i}", str(i)) + resp("GET", f"{key}:{i}") for i in range(5000)
        )
        s.sendall(payload)
        replies = self.read_replies(s, 10_000, timeout=60)
        expect = []
        for i in range(5000):
            v = str(i).encode()
            expect += [b"+OK\r\n", b"$%d\r\n%s\r\n" % (len(v), v)]
        self.assertEqual(replies, expect)
        self.assertLess(elapsed, 60)

    def test_many_connections_opened_and_dropped(self) -> None:
        c = redis.Redis(port=self.port, socket_timeout=5)
        baseline = int(c.info("clients")["connected_clients"])
        linger = struct.pack("ii", 1, 0)
        for batch in range(4):
            socks = []
            for i in range(250):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                kind = (batch * 250 + i) % 5
                if kind == 1:
                    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk")  # half a command
                elif kind == 2:
                    s.sendall(resp("SET", f"drop:{batch}:{i}", "v"))  # never read
                elif kind == 3:
                    s.sendall(resp("GET", "k") * 100)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)  # RST
                elif kind == 4:
                    s.sendall(b"*1\r\n$4\r\nPI")
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                socks.append(s)
            for s in socks:
                s.close()
        wait_until(
            lambda: int(c.info("clients")["connected_clients"]) <= baseline + 1,
            timeout=10,
            message="the dropped connections to be cleaned up",
        )
        c.close()

    def test_split_frames(self) -> None:
        """A command arriving one byte at a time is still one command."""
        s = self.connect()
        for b in resp("SET", "split", "a\r\nb") + resp("GET", "split"):
            s.send(bytes([b]))
            time.sleep(0.001)
        self.assertEqual(self.read_replies(s, 2), [b"+OK\r\n", b"$4\r\na\r\nb\r\n"])
