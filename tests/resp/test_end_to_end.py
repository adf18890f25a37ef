"""End to end: a real listening socket, a tiny in-memory table, real clients.

redis-cli runs as a subprocess (skipped if it is not installed); redis-py 8
(which opens with HELLO 3, CLIENT MAINT_NOTIFICATIONS and CLIENT SETINFO)
runs in a thread; txredisapi runs on the reactor.
"""

from __future__ import annotations

import shutil
from typing import Any

import redis
import txredisapi
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase

from eraft_twisted.resp.commands import CommandTable
from eraft_twisted.resp.connection import register_connection_commands
from eraft_twisted.resp.encoder import OK
from eraft_twisted.resp.protocol import RespServerFactory
from eraft_twisted.resp.state import ConnectionState

REDIS_CLI = shutil.which("redis-cli")


def demo_table(store: dict[bytes, bytes]) -> CommandTable:
    """SET/GET/DEL on a dict, plus SLOWGET whose reply arrives later (a Deferred)."""
    table = CommandTable()
    register_connection_commands(table)

    def set_(conn: ConnectionState, argv: list[bytes]) -> Any:
        store[argv[1]] = argv[2]
        return OK

    def get(conn: ConnectionState, argv: list[bytes]) -> Any:
        return store.get(argv[1])

    def delete(conn: ConnectionState, argv: list[bytes]) -> Any:
        return sum(store.pop(k, None) is not None for k in argv[1:])

    def slowget(conn: ConnectionState, argv: list[bytes]) -> Any:
        return deferLater(reactor, 0.01, store.get, argv[1])

    table.register("set", -3, "write denyoom", set_, 1, 1, 1, group="string")
    table.register("get", 2, "readonly fast", get, 1, 1, 1, group="string")
    table.register("del", -2, "write", delete, 1, -1, 1)
    table.register("slowget", 2, "readonly", slowget, 1, 1, 1, group="string")
    return table


class _CollectingProcess(ProcessProtocol):
    """Feeds stdin, collects stdout and stderr, fires ``done`` with (out, err, code)."""

    def __init__(self, stdin: bytes) -> None:
        self.stdin = stdin
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.done: Deferred[tuple[bytes, bytes, int]] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", 0) or 0
        self.done.callback((b"".join(self.out), b"".join(self.err), code))


class EndToEndTests(TestCase):
    timeout = 20

    def setUp(self) -> None:
        self.store: dict[bytes, bytes] = {}
        self.factory = RespServerFactory(demo_table(self.store))
        self.port: IListeningPort = reactor.listenTCP(  # type: ignore[attr-defined]
            0, self.factory, interface="127.0.0.1"
        )
        self.port_number = self.port.getHost().port  # type: ignore[attr-defined]

    @inlineCallbacks
    def tearDown(self) -> Any:  # type: ignore[override]
        yield self.port.stopListening()
        # Clients have closed their ends; wait for the server side to notice.
        for _ in range(200):
            if not len(self.factory.registry):
                break
            yield deferLater(reactor, 0.01, lambda: None)
        for conn in self.factory.registry:
            conn.abort()
        yield deferLater(reactor, 0, lambda: None)

    def cli(self, *args: str, stdin: bytes | None = None) -> Deferred[tuple[bytes, bytes, int]]:
        """Run redis-cli against the server: (stdout, stderr, exit code)."""
        if REDIS_CLI is None:
            raise SkipTest("redis-cli is not installed")
        argv = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port_number), *args]
        if stdin is None:
            return getProcessOutputAndValue(argv[0], argv[1:])
        # redis-cli reads commands from stdin when it is not a terminal.
        proto = _CollectingProcess(stdin)
        reactor.spawnProcess(proto, argv[0], argv)  # type: ignore[attr-defined]
        return proto.done

    @inlineCallbacks
    def test_redis_cli_commands(self) -> Any:
        out, err, code = yield self.cli("set", "greeting", "hello world")
        self.assertEqual((out, code), (b"OK\n", 0), err)
        out, err, code = yield self.cli("get", "greeting")
        self.assertEqual(out, b"hello world\n")
        out, err, code = yield self.cli("slowget", "greeting")
        self.assertEqual(out, b"hello world\n")
        out, err, code = yield self.cli("nosuch", "a", "b")
        self.assertIn(b"ERR unknown command 'nosuch', with args beginning with: 'a' 'b'", out)
        out, err, code = yield self.cli("get")
        self.assertIn(b"ERR wrong number of arguments for 'get' command", out)
        out, err, code = yield self.cli("-3", "hello")
        self.assertIn(b"\nproto 3\n", out)
        out, err, code = yield self.cli("command", "count")
        self.assertEqual(out, b"%d\n" % len(self.factory.table))

    @inlineCallbacks
    def test_redis_cli_reads_commands_from_stdin(self) -> Any:
        out, err, code = yield self.cli(stdin=b"SET a 1\nslowget a\nGET nope\nDEL a\nPING\n")
        self.assertEqual(out, b"OK\n1\n\n1\nPONG\n", err)

    @inlineCallbacks
    def test_redis_cli_pipe_mode(self) -> Any:
        # --pipe writes raw RESP as fast as it can, ends with an ECHO and counts replies.
        data = b"".join(b"*3\r\n$3\r\nSET\r\n$4\r\nk%03d\r\n$1\r\nv\r\n" % i for i in range(500))
        out, err, code = yield self.cli("--pipe", stdin=data)
        self.assertEqual(code, 0, out + err)
        self.assertIn(b"errors: 0, replies: 500", out + err)
        self.assertEqual(len(self.store), 500)

    @inlineCallbacks
    def test_redis_py_default_client(self) -> Any:
        port = self.port_number

        def client_session() -> dict[str, Any]:
            r = redis.Redis(host="127.0.0.1", port=port)
            try:
                results: dict[str, Any] = {}
                results["ping"] = r.ping()
                results["set"] = r.set("k", "v")
                results["get"] = r.get("k")
                pipe = r.pipeline(transaction=False)
                for i in range(50):
                    pipe.set(f"p{i}", i)
                    pipe.execute_command("SLOWGET", f"p{i}")
                    pipe.get(f"p{i}")
                results["pipeline"] = pipe.execute()
                results["info"] = r.client_info()
                results["hello"] = r.connection_pool.get_connection().handshake_metadata
                try:
                    r.execute_command("NOSUCH", "x")
                except redis.ResponseError as e:
                    results["error"] = str(e)
                results["echo"] = r.echo(b"\x00\xff")
                results["delete"] = r.delete("k", "missing")
                return results
            finally:
                r.close()

        results = yield deferToThread(client_session)
        self.assertIs(results["ping"], True)
        self.assertIs(results["set"], True)
        self.assertEqual(results["get"], b"v")
        expected = []
        for i in range(50):
            expected += [True, b"%d" % i, b"%d" % i]
        self.assertEqual(results["pipeline"], expected)
        self.assertEqual(results["info"]["lib-name"], "redis-py")
        self.assertEqual(results["info"]["resp"], "3")
        self.assertEqual(results["hello"][b"proto"], 3)
        self.assertEqual(
            results["error"], "unknown command 'NOSUCH', with args beginning with: 'x' "
        )
        self.assertEqual(results["echo"], b"\x00\xff")
        self.assertEqual(results["delete"], 1)

    @inlineCallbacks
    def test_redis_py_resp2_client(self) -> Any:
        port = self.port_number

        def client_session() -> tuple[Any, ...]:
            r = redis.Redis(host="127.0.0.1", port=port, protocol=2, client_name="worker")
            try:
                return r.set("a", "b"), r.get("a"), r.client_getname(), r.client_info()["resp"]
            finally:
                r.close()

        results = yield deferToThread(client_session)
        self.assertEqual(results, (True, b"b", "worker", "2"))

    @inlineCallbacks
    def test_txredisapi(self) -> Any:
        conn = yield txredisapi.Connection("127.0.0.1", self.port_number, reconnect=False)
        try:
            yield conn.set("tx", "value")
            value = yield conn.get("tx")
            self.assertEqual(value, "value")
            results = yield conn.execute_command("SLOWGET", "tx")
            self.assertEqual(results, "value")
        finally:
            yield conn.disconnect()
