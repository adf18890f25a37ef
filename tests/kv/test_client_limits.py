"""Client limits of a real ``twistd eraftkv`` (one-node group) with real clients:
the output-buffer limit, the request-size limits and the idle timeout."""

from __future__ import annotations

import shutil
import socket
import time

from twisted.trial import unittest

from tests.procs import Cluster, Node
from tests.waiting import wait_until

MiB = 1024 * 1024


def raw_client(node: Node, rcvbuf: int | None = None) -> socket.socket:
    """A plain TCP connection to the node's RESP port."""
    s = socket.socket()
    if rcvbuf is not None:
        # Before connecting, so the window the server sees stays small.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", node.resp_port))
    return s


def read_until_closed(s: socket.socket) -> int:
    """Bytes read until the server closes (or resets) the connection."""
    total = 0
    while True:
        try:
            data = s.recv(1024 * 1024)
        except ConnectionResetError:
            return total
        if not data:
            return total
        total += len(data)


class ClientLimitsTests(unittest.TestCase):
    timeout = 120

    def start(self, *limits: str) -> Node:
        cluster = Cluster(1, extra=["--tick-ms", "50", *limits])
        self.addCleanup(shutil.rmtree, cluster.dir, True)
        self.addCleanup(cluster.stop)
        cluster.start()
        return cluster.leader()

    def log_lines(self, node: Node, text: str) -> list[str]:
        with open(node.log_path, errors="replace") as f:
            return [line for line in f if text in line]

    def test_a_client_that_does_not_read_is_dropped(self) -> None:
        node = self.start("--client-output-buffer-limit", str(MiB))
        c = node.client()
        self.assertEqual(
            c.config_get("client-output-buffer-limit"),
            {"client-output-buffer-limit": f"normal {MiB} 0 0 slave {MiB} 0 0 pubsub {MiB} 0 0"},
        )
        value = b"x" * 100_000
        c.set("big", value)
        # 400 GETs of 100 kB (40 MB of replies) pipelined by a client that never reads.
        greedy = raw_client(node, rcvbuf=4096)
        greedy.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 400)
        (line,) = wait_until(
            lambda: self.log_lines(node, "client-output-buffer-limit"),
            message="the greedy client dropped (a log line)",
        )
        self.assertIn(f"over client-output-buffer-limit {MiB}", line)
        self.assertLess(read_until_closed(greedy), 20 * MiB)
        greedy.close()
        # Other clients are served: short pipelines, and one reply over the limit.
        self.assertEqual(c.get("big"), value)
        reader = node.client(timeout=30)
        for _ in range(40):
            pipe = reader.pipeline(transaction=False)
            for _ in range(5):
                pipe.get("big")
            self.assertEqual(pipe.execute(), [value] * 5)
        huge = b"y" * (3 * MiB)
        c.set("huge", huge)
        self.assertEqual(reader.get("huge"), huge)
        self.assertEqual(len(self.log_lines(node, "client-output-buffer-limit")), 1)

    def test_too_big_a_request_is_refused_and_closed(self) -> None:
        node = self.start("--client-query-buffer-limit", str(MiB))
        c = node.client()
        self.assertEqual(
            c.config_get("client-query-buffer-limit", "proto-max-bulk-len"),
            {"client-query-buffer-limit": str(MiB), "proto-max-bulk-len": str(512 * MiB)},
        )
        s = raw_client(node)
        # Judged from the header: the 2 MB of data never needs to be sent.
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n")
        reply = s.recv(4096)
        self.assertEqual(
            reply,
            b"-ERR Protocol error: too big request "
            b"(client-query-buffer-limit is 1048576 bytes)\r\n",
        )
        self.assertEqual(read_until_closed(s), 0)
        s.close()
        s = raw_client(node)
        s.sendall(b"*2000000\r\n")
        self.assertEqual(s.recv(4096), b"-ERR Protocol error: invalid multibulk length\r\n")
        self.assertEqual(read_until_closed(s), 0)
        s.close()
        # Within the limit, and for everyone else, nothing changes.
        self.assertTrue(c.set("k", b"v" * (MiB - 100)))
        self.assertEqual(len(c.get("k") or b""), MiB - 100)

    def test_an_idle_client_is_closed(self) -> None:
        node = self.start("--client-idle-timeout", "2")
        self.assertEqual(node.client().config_get("timeout"), {"timeout": "2"})
        idle = raw_client(node)
        busy = raw_client(node)
        for s in (idle, busy):
            s.sendall(b"PING\r\n")
            self.assertEqual(s.recv(100), b"+PONG\r\n")
        for _ in range(7):
            time.sleep(0.5)
            busy.sendall(b"PING\r\n")
            self.assertEqual(busy.recv(100), b"+PONG\r\n")
        self.assertEqual(read_until_closed(idle), 0)
        busy.sendall(b"PING\r\n")
        self.assertEqual(busy.recv(100), b"+PONG\r\n")
        for s in (idle, busy):
            s.close()
