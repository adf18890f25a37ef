"""CONFIG GET on the router: its own client limits, under Redis's names."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.kdb.server import RouterServer, register_config
from eraft_twisted.resp.commands import CommandTable
from eraft_twisted.resp.connection import register_connection_commands
from eraft_twisted.resp.protocol import RespServerFactory
from eraft_twisted.tap import eraftkdb


class RouterConfigTests(SynchronousTestCase):
    def setUp(self) -> None:
        table = CommandTable()
        register_connection_commands(table)
        factory = RespServerFactory(
            table, clock=Clock(), max_clients=50, output_limit=4096, idle_timeout=30
        )
        register_config(table, factory.client_settings)
        self.proto = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def ask(self, line: bytes) -> bytes:
        self.transport.clear()
        self.proto.dataReceived(line + b"\r\n")
        return self.transport.value()

    def test_config_get(self) -> None:
        self.assertEqual(
            self.ask(b"CONFIG GET timeout MAXCLIENTS"),
            b"*4\r\n$7\r\ntimeout\r\n$2\r\n30\r\n$10\r\nmaxclients\r\n$2\r\n50\r\n",
        )
        reply = self.ask(b"CONFIG GET client-*")
        self.assertIn(
            b"client-output-buffer-limit\r\n$46\r\nnormal 4096 0 0 slave 4096 0 0 pubsub 4096 0 0\r\n",
            reply,
        )
        self.assertIn(b"client-query-buffer-limit\r\n$10\r\n1073741824\r\n", reply)
        self.assertEqual(self.ask(b"CONFIG GET nosuch"), b"*0\r\n")

    def test_config_set_is_refused(self) -> None:
        self.assertIn(
            b"-ERR CONFIG SET is not supported ('timeout')", self.ask(b"CONFIG SET timeout 5")
        )

    def test_options_reach_the_listener(self) -> None:
        opts = eraftkdb.Options()
        opts.parseOptions(
            ["--meta", "127.0.0.1:1", "--client-idle-timeout", "7", "--maxclients", "9"]
        )
        server = RouterServer.from_options(opts)
        self.assertEqual(
            (server.max_clients, server.client_limits),
            (9, {"max_request": 1024**3, "output_limit": 64 * 1024**2, "idle_timeout": 7}),
        )
