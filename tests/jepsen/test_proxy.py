"""The nemesis proxy itself: cuts one way or both, resets, delays, heals."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

from twisted.trial import unittest

from eraft_twisted.testing.proxy import ProxyNet
from tests.waiting import wait_until


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: EchoServer = self.server  # type: ignore[assignment]
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            with server.lock:
                server.received += data
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.lock = threading.Lock()
        self.received = b""
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


def receive(s: socket.socket, n: int, timeout: float = 1.0) -> tuple[bytes, bool]:
    """Up to ``n`` bytes within ``timeout`` s, and whether the connection was
    closed (end of stream or reset) rather than just silent."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        s.settimeout(left)
        try:
            chunk = s.recv(n - len(data))
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


class Proxy(unittest.TestCase):
    def setUp(self) -> None:
        self.servers = [EchoServer(), EchoServer()]
        for srv in self.servers:
            self.addCleanup(srv.server_close)
            self.addCleanup(srv.shutdown)
        self.net = ProxyNet(2, [srv.address for srv in self.servers])
        self.addCleanup(self.net.close)

    def link(self, src: int, dst: int) -> socket.socket:
        """A connection as node ``src`` makes it to node ``dst``."""
        host, port = self.net.address(src, dst).split(":")
        s = socket.create_connection((host, int(port)), timeout=2)
        self.addCleanup(s.close)
        return s

    def assertEcho(self, s: socket.socket, data: bytes, timeout: float = 1.0) -> None:
        s.sendall(data)
        self.assertEqual(receive(s, len(data), timeout), (data, False))

    def assertSilent(self, s: socket.socket, timeout: float = 0.5) -> None:
        """Nothing arrives within ``timeout`` s and the connection stays open."""
        self.assertEqual(receive(s, 1, timeout), (b"", False), "expected silence")

    def assertClosed(self, s: socket.socket, timeout: float = 2.0) -> None:
        """The proxy closes (or resets) the connection, sending nothing."""
        self.assertEqual(receive(s, 1, timeout), (b"", True), "expected a closed connection")

    def assertReceived(self, server: int, data: bytes) -> None:
        """Echo server ``server`` has received exactly ``data`` (waits for it)."""
        srv = self.servers[server]
        wait_until(
            lambda: srv.received == data, timeout=2, interval=0.02, message=f"{data!r} at {server}"
        )

    def test_relays_both_ways(self) -> None:
        s = self.link(0, 1)
        self.assertEcho(s, b"hello")
        self.assertEqual(self.servers[1].received, b"hello")
        self.assertEqual(self.servers[0].received, b"")

    def test_one_way_cut_drops_then_heal_resets(self) -> None:
        s = self.link(0, 1)
        self.assertEcho(s, b"a")
        self.net.cut(0, 1)
        s.sendall(b"lost")
        self.assertSilent(s)
        self.assertEqual(self.servers[1].received, b"a")
        # 1 still reaches 0, but what 0 answers on that link is lost too.
        t = self.link(1, 0)
        t.sendall(b"ok")
        self.assertReceived(0, b"ok")
        self.assertSilent(t)
        self.net.heal()
        # The damaged stream is closed rather than resumed mid-frame ...
        self.assertClosed(s)
        # ... and a new connection works.
        self.assertEcho(self.link(0, 1), b"again")

    def test_cut_in_the_other_direction_drops_answers(self) -> None:
        s = self.link(0, 1)
        self.net.cut(1, 0)  # 1 cannot send to 0: its answers on 0's link are lost
        s.sendall(b"ping")
        self.assertReceived(1, b"ping")
        self.assertSilent(s)

    def test_reset_mode_refuses_connections(self) -> None:
        s = self.link(0, 1)
        self.net.partition([[0], [1]], mode="reset")
        self.assertClosed(s)
        s2 = self.link(0, 1)
        try:
            s2.sendall(b"x")
        except OSError:
            pass  # already reset
        self.assertClosed(s2, timeout=1)
        self.assertEqual(self.servers[1].received, b"")
        self.net.heal()
        self.assertEcho(self.link(0, 1), b"y")

    def test_delay(self) -> None:
        s = self.link(0, 1)
        self.net.slow(150)
        t0 = time.monotonic()
        self.assertEcho(s, b"slow", timeout=3)
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)  # 150 ms each way
        stats = self.net.stats()
        self.assertEqual(stats["0-1"]["bytes"], {"fwd": 4, "back": 4})
