"""The nemesis proxy itself: cuts one way or both, resets, delays, heals."""

from __future__ import annotations

import socket
import socketserver
import threading
import time

from twisted.trial import unittest

from eraft_twisted.testing.nemesis import ProxyNet


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


def recv_some(s: socket.socket, n: int, timeout: float = 1.0) -> bytes:
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n and time.monotonic() < deadline:
        try:
            chunk = s.recv(n - len(data))
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


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

    def test_relays_both_ways(self) -> None:
        s = self.link(0, 1)
        s.sendall(b"hello")
        self.assertEqual(recv_some(s, 5), b"hello")
        self.assertEqual(self.servers[1].received, b"hello")
        self.assertEqual(self.servers[0].received, b"")

    def test_one_way_cut_drops_then_heal_resets(self) -> None:
        s = self.link(0, 1)
        s.sendall(b"a")
        self.assertEqual(recv_some(s, 1), b"a")
        self.net.cut(0, 1)
        s.sendall(b"lost")
        self.assertEqual(recv_some(s, 4, timeout=0.5), b"")
        self.assertEqual(self.servers[1].received, b"a")
        # 1 still reaches 0, but what 0 answers on that link is lost too.
        t = self.link(1, 0)
        t.sendall(b"ok")
        self.assertEqual(recv_some(t, 2, timeout=0.5), b"")
        self.assertEqual(self.servers[0].received, b"ok")
        self.net.heal()
        # The damaged stream is closed rather than resumed mid-frame ...
        self.assertEqual(recv_some(s, 1, timeout=2), b"")
        # ... and a new connection works.
        s2 = self.link(0, 1)
        s2.sendall(b"again")
        self.assertEqual(recv_some(s2, 5), b"again")

    def test_cut_in_the_other_direction_drops_answers(self) -> None:
        s = self.link(0, 1)
        self.net.cut(1, 0)  # 1 cannot send to 0: its answers on 0's link are lost
        s.sendall(b"ping")
        self.assertEqual(recv_some(s, 4, timeout=0.5), b"")
        self.assertEqual(self.servers[1].received, b"ping")

    def test_reset_mode_refuses_connections(self) -> None:
        s = self.link(0, 1)
        self.net.partition([[0], [1]], mode="reset")
        self.assertEqual(recv_some(s, 1, timeout=2), b"")
        s2 = self.link(0, 1)
        s2.sendall(b"x")
        self.assertEqual(recv_some(s2, 1, timeout=1), b"")
        self.net.heal()
        s3 = self.link(0, 1)
        s3.sendall(b"y")
        self.assertEqual(recv_some(s3, 1), b"y")

    def test_delay(self) -> None:
        s = self.link(0, 1)
        self.net.slow(150)
        t0 = time.monotonic()
        s.sendall(b"slow")
        self.assertEqual(recv_some(s, 4, timeout=3), b"slow")
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)  # 150 ms each way
        stats = self.net.stats()
        self.assertEqual(stats["0-1"]["bytes"], {"fwd": 4, "back": 4})
