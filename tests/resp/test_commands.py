"""Tests for the command table, dispatch rules and the connection-level commands."""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted import REDIS_VERSION
from eraft_twisted.resp.commands import CommandError, CommandTable
from eraft_twisted.resp.connection import ServerInfo, register_connection_commands
from eraft_twisted.resp.encoder import OK, PONG, ErrorReply, SimpleString, Verbatim
from eraft_twisted.resp.state import ClientRegistry, ConnectionState


def _result(value: Any) -> Any:
    """The value of an already-fired Deferred, or ``value`` itself."""
    if isinstance(value, Deferred):
        out: list[Any] = []
        value.addBoth(out.append)
        assert out, "Deferred has not fired"
        return out[0]
    return value


class Setup:
    def make(self, server_info: Any = None) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.registry = ClientRegistry(self.clock)
        self.table = CommandTable()
        register_connection_commands(self.table, server_info)
        self.conn = self.new_conn()

    def new_conn(self) -> ConnectionState:
        conn = ConnectionState(
            self.registry.next_id(),
            self.registry,
            peer="127.0.0.1:5000",
            local="127.0.0.1:6379",
            now=self.clock.seconds(),
        )
        self.registry.add(conn)
        return conn

    def call(self, *args: bytes | str, conn: ConnectionState | None = None) -> Any:
        argv = [a.encode() if isinstance(a, str) else a for a in args]
        return _result(self.table.dispatch(conn or self.conn, argv))


class DispatchTests(Setup, SynchronousTestCase):
    def setUp(self) -> None:
        self.make()
        self.calls: list[list[bytes]] = []

        def get(conn: ConnectionState, argv: list[bytes]) -> Any:
            self.calls.append(argv)
            return b"value"

        self.table.register("get", 2, "readonly fast", get, 1, 1, 1)
        self.table.register("mset", -3, ["write"], lambda c, a: OK, 1, -1, 2)

    def test_case_insensitive_lookup(self) -> None:
        for name in ("get", "GET", "GeT"):
            self.assertEqual(self.call(name, "k"), b"value")
        self.assertIn("Get", self.table)
        self.assertIn(b"GET", self.table)
        self.assertNotIn("nope", self.table)

    def test_unknown_command(self) -> None:
        self.assertEqual(
            self.call("foo", "a", "b"),
            ErrorReply("ERR unknown command 'foo', with args beginning with: 'a' 'b' "),
        )
        self.assertEqual(
            self.call("foo"), ErrorReply("ERR unknown command 'foo', with args beginning with: ")
        )

    def test_unknown_command_truncates_like_redis(self) -> None:
        reply = self.call("x" * 200, "a" * 100, "b" * 100, "c")
        self.assertEqual(
            reply,
            ErrorReply(
                f"ERR unknown command '{'x' * 128}', with args beginning with: "
                f"'{'a' * 100}' '{'b' * 25}' "
            ),
        )
        # %s stops at NUL; the encoder later turns CR/LF into spaces.
        self.assertEqual(
            self.call(b"fo\x00o", b"a\x00b"),
            ErrorReply("ERR unknown command 'fo', with args beginning with: 'a' "),
        )

    def test_arity(self) -> None:
        wrong_get = ErrorReply("ERR wrong number of arguments for 'get' command")
        self.assertEqual(self.call("GET"), wrong_get)
        self.assertEqual(self.call("GET", "a", "b"), wrong_get)
        self.assertEqual(
            self.call("MSET", "k"), ErrorReply("ERR wrong number of arguments for 'mset' command")
        )
        self.assertEqual(self.call("MSET", "k", "v", "k2", "v2"), OK)
        self.assertEqual(self.calls, [])

    def test_handler_gets_conn_and_argv(self) -> None:
        self.call("Get", "k")
        self.assertEqual(self.calls, [[b"Get", b"k"]])
        self.assertEqual(self.conn.last_command, "get")

    def test_command_error(self) -> None:
        def handler(conn: ConnectionState, argv: list[bytes]) -> Any:
            raise CommandError("no such key")

        self.table.register("x", 1, "", handler, 0, 0, 0)
        self.assertEqual(self.call("x"), ErrorReply("ERR no such key"))

        def moved(conn: ConnectionState, argv: list[bytes]) -> Any:
            raise CommandError("3999 127.0.0.1:6381", code="MOVED")

        self.table.register("y", 1, "", moved, 0, 0, 0)
        self.assertEqual(self.call("y"), ErrorReply("MOVED 3999 127.0.0.1:6381"))

    def test_internal_error_is_logged(self) -> None:
        def handler(conn: ConnectionState, argv: list[bytes]) -> Any:
            raise ZeroDivisionError()

        self.table.register("boom", 1, "", handler, 0, 0, 0)
        self.assertEqual(self.call("boom"), ErrorReply("ERR internal error"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_deferred_results(self) -> None:
        self.table.register("a", 1, "", lambda c, a: succeed(b"x"), 0, 0, 0)
        self.table.register("b", 1, "", lambda c, a: fail(CommandError("nope")), 0, 0, 0)
        self.table.register("c", 1, "", lambda c, a: fail(KeyError("k")), 0, 0, 0)
        self.assertEqual(self.call("a"), b"x")
        self.assertEqual(self.call("b"), ErrorReply("ERR nope"))
        self.assertEqual(self.call("c"), ErrorReply("ERR internal error"))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_failure_after_the_client_left_is_not_an_error(self) -> None:
        d: Deferred[Any] = Deferred()
        self.table.register("slow", 1, "", lambda c, a: d, 0, 0, 0)
        result = self.table.dispatch(self.conn, [b"slow"])
        self.conn.closed = True
        d.errback(KeyError("k"))
        self.assertEqual(_result(result), ErrorReply("ERR internal error"))
        self.assertEqual(self.flushLoggedErrors(KeyError), [])

    def test_coroutine_handler(self) -> None:
        async def handler(conn: ConnectionState, argv: list[bytes]) -> Any:
            return argv[1]

        async def failing(conn: ConnectionState, argv: list[bytes]) -> Any:
            raise CommandError("bad")

        self.table.register("co", 2, "", handler, 0, 0, 0)
        self.table.register("cofail", 1, "", failing, 0, 0, 0)
        self.assertEqual(self.call("co", "v"), b"v")
        self.assertEqual(self.call("cofail"), ErrorReply("ERR bad"))

    def test_subcommands(self) -> None:
        self.table.register("raft.node", -2, "admin", None, 0, 0, 0)
        self.table.register_subcommand("raft.node", "add", 4, "admin", lambda c, a: a[2:])
        self.assertEqual(self.call("RAFT.NODE", "ADD", "2", "h:1"), [b"2", b"h:1"])
        self.assertEqual(
            self.call("raft.node", "add", "2"),
            ErrorReply("ERR wrong number of arguments for 'raft.node|add' command"),
        )
        self.assertEqual(
            self.call("raft.node", "zap"),
            ErrorReply("ERR unknown subcommand 'zap'. Try RAFT.NODE HELP."),
        )
        self.assertEqual(
            self.call("raft.node"),
            ErrorReply("ERR wrong number of arguments for 'raft.node' command"),
        )
        self.assertRaises(KeyError, self.table.register_subcommand, "nope", "x", 2, "", print)

    def test_reregistering_keeps_subcommands(self) -> None:
        self.table.register("client", -2, "", None, 0, 0, 0)
        self.assertEqual(self.call("client", "id"), self.conn.id)


class ConnectionCommandTests(Setup, SynchronousTestCase):
    def setUp(self) -> None:
        self.make()

    def test_ping(self) -> None:
        self.assertEqual(self.call("PING"), PONG)
        self.assertEqual(self.call("PING", "hi"), b"hi")
        self.assertEqual(
            self.call("PING", "a", "b"),
            ErrorReply("ERR wrong number of arguments for 'ping' command"),
        )

    def test_echo(self) -> None:
        self.assertEqual(self.call("ECHO", b"\x00x"), b"\x00x")

    def test_quit(self) -> None:
        self.assertEqual(self.call("QUIT"), OK)
        self.assertTrue(self.conn.close_requested)

    def test_select(self) -> None:
        self.assertEqual(self.call("SELECT", "0"), OK)
        self.assertEqual(self.call("SELECT", "1"), ErrorReply("ERR DB index is out of range"))
        for bad in ("x", "00", "+0", " 0", ""):
            self.assertEqual(
                self.call("SELECT", bad), ErrorReply("ERR value is not an integer or out of range")
            )

    def test_auth(self) -> None:
        self.assertEqual(self.call("AUTH", "default", "anything"), OK)
        self.assertEqual(
            self.call("AUTH", "bob", "pw"),
            ErrorReply("WRONGPASS invalid username-password pair or user is disabled."),
        )
        self.assertTrue(self.call("AUTH", "pw").startswith("ERR AUTH <password> called without"))
        self.assertEqual(self.call("AUTH", "a", "b", "c"), ErrorReply("ERR syntax error"))

    def test_hello(self) -> None:
        reply = self.call("HELLO")
        self.assertEqual(
            reply,
            {
                "server": "redis",
                "version": REDIS_VERSION,
                "proto": 2,
                "id": self.conn.id,
                "mode": "standalone",
                "role": "master",
                "modules": [],
            },
        )
        self.assertEqual(self.call("HELLO", "3")["proto"], 3)
        self.assertEqual(self.conn.protocol_version, 3)
        self.assertEqual(self.call("hello")["proto"], 3)
        self.assertEqual(self.call("HELLO", "2")["proto"], 2)
        self.assertEqual(self.conn.protocol_version, 2)

    def test_hello_errors(self) -> None:
        self.assertEqual(
            self.call("HELLO", "4"), ErrorReply("NOPROTO unsupported protocol version")
        )
        self.assertEqual(
            self.call("HELLO", "1"), ErrorReply("NOPROTO unsupported protocol version")
        )
        self.assertEqual(
            self.call("HELLO", "three"),
            ErrorReply("ERR Protocol version is not an integer or out of range"),
        )
        self.assertEqual(
            self.call("HELLO", "3", "SETNAME"),
            ErrorReply("ERR Syntax error in HELLO option 'SETNAME'"),
        )
        self.assertEqual(
            self.call("HELLO", "3", "AUTH", "bob", "pw"),
            ErrorReply("WRONGPASS invalid username-password pair or user is disabled."),
        )
        self.assertEqual(
            self.call("HELLO", "3", "SETNAME", "a b"),
            ErrorReply("ERR Client names cannot contain spaces, newlines or special characters."),
        )
        # A failed HELLO changes nothing.
        self.assertEqual(self.conn.protocol_version, 2)
        self.assertIsNone(self.conn.name)

    def test_hello_options(self) -> None:
        reply = self.call("HELLO", "3", "AUTH", "default", "pw", "SETNAME", "app")
        self.assertEqual(reply["proto"], 3)
        self.assertEqual(self.conn.name, "app")

    def test_server_info(self) -> None:
        roles = itertools.cycle(["master", "replica"])
        self.make(ServerInfo(version="7.2.4", role=lambda: next(roles)))
        self.assertEqual(self.call("HELLO")["role"], "master")
        self.assertEqual(self.call("HELLO")["role"], "replica")
        self.assertEqual(self.call("HELLO")["version"], "7.2.4")
        self.make({"server": "eraft", "mode": "cluster"})
        reply = self.call("HELLO")
        self.assertEqual((reply["server"], reply["mode"]), ("eraft", "cluster"))

    def test_client_id_and_names(self) -> None:
        self.assertEqual(self.call("CLIENT", "ID"), self.conn.id)
        self.assertIsNone(self.call("CLIENT", "GETNAME"))
        self.assertEqual(self.call("CLIENT", "SETNAME", "worker-1"), OK)
        self.assertEqual(self.call("client", "getname"), b"worker-1")
        self.assertEqual(
            self.call("CLIENT", "SETNAME", "a b"),
            ErrorReply("ERR Client names cannot contain spaces, newlines or special characters."),
        )
        self.assertEqual(self.call("CLIENT", "SETNAME", ""), OK)
        self.assertIsNone(self.call("CLIENT", "GETNAME"))
        self.assertEqual(
            self.call("CLIENT", "SETNAME"),
            ErrorReply("ERR wrong number of arguments for 'client|setname' command"),
        )

    def test_client_setinfo(self) -> None:
        self.assertEqual(self.call("CLIENT", "SETINFO", "LIB-NAME", "redis-py"), OK)
        self.assertEqual(self.call("CLIENT", "SETINFO", "lib-ver", "8.1.0"), OK)
        self.assertEqual((self.conn.lib_name, self.conn.lib_ver), ("redis-py", "8.1.0"))
        self.assertEqual(
            self.call("CLIENT", "SETINFO", "color", "x"),
            ErrorReply("ERR Unrecognized option 'color'"),
        )
        self.assertEqual(
            self.call("CLIENT", "SETINFO", "LIB-NAME", "a\nb"),
            ErrorReply("ERR lib-name cannot contain spaces, newlines or special characters."),
        )

    def test_client_unknown_subcommand(self) -> None:
        self.assertEqual(
            self.call("CLIENT", "MAINT_NOTIFICATIONS", "ON"),
            ErrorReply("ERR unknown subcommand 'MAINT_NOTIFICATIONS'. Try CLIENT HELP."),
        )
        self.assertEqual(
            self.call("CLIENT"), ErrorReply("ERR wrong number of arguments for 'client' command")
        )

    def test_client_info_and_list(self) -> None:
        other = self.new_conn()
        self.call("CLIENT", "SETNAME", "me")
        self.clock.advance(5)
        info = self.call("CLIENT", "INFO")
        self.assertIsInstance(info, bytes)
        self.assertTrue(info.endswith(b"\n"))
        fields = dict(kv.split(b"=", 1) for kv in info.split())
        self.assertEqual(fields[b"id"], b"%d" % self.conn.id)
        self.assertEqual(fields[b"name"], b"me")
        self.assertEqual(fields[b"addr"], b"127.0.0.1:5000")
        self.assertEqual(fields[b"age"], b"5")
        self.assertEqual(fields[b"cmd"], b"client|info")
        self.assertEqual(fields[b"resp"], b"2")
        listing = self.call("CLIENT", "LIST")
        self.assertEqual(len(listing.splitlines()), 2)
        only = self.call("CLIENT", "LIST", "ID", str(other.id))
        self.assertEqual(len(only.splitlines()), 1)
        self.assertIn(b"id=%d " % other.id, only)
        self.assertEqual(self.call("CLIENT", "LIST", "TYPE", "pubsub"), b"")
        self.assertEqual(self.call("CLIENT", "LIST", "bogus"), ErrorReply("ERR syntax error"))
        self.call("HELLO", "3")
        self.assertIsInstance(self.call("CLIENT", "INFO"), Verbatim)

    def test_client_help(self) -> None:
        lines = self.call("CLIENT", "HELP")
        self.assertTrue(all(isinstance(line, SimpleString) for line in lines))


class CommandCommandTests(Setup, SynchronousTestCase):
    def setUp(self) -> None:
        self.make()
        self.table.register(
            "get",
            2,
            "readonly fast",
            lambda c, a: None,
            1,
            1,
            1,
            summary="Get a key",
            group="string",
        )
        self.table.register("mset", -3, "write denyoom", lambda c, a: OK, 1, -1, 2)

    def test_count(self) -> None:
        self.assertEqual(self.call("COMMAND", "COUNT"), len(self.table))
        self.assertEqual(self.call("COMMAND", "COUNT"), len(self.call("COMMAND")))

    def test_info(self) -> None:
        (get,) = self.call("COMMAND", "INFO", "get")
        name, arity, flags, first, last, step, cats, tips, specs, subs = get
        self.assertEqual((name, arity, first, last, step), ("get", 2, 1, 1, 1))
        self.assertEqual(flags, {SimpleString("readonly"), SimpleString("fast")})
        self.assertIn(SimpleString("@read"), cats)
        self.assertEqual(specs[0]["begin_search"]["spec"]["index"], 1)
        self.assertEqual(subs, [])
        self.assertEqual(self.call("COMMAND", "INFO", "nope"), [None])
        (client,) = self.call("COMMAND", "INFO", "client")
        self.assertIn("client|setname", [sub[0] for sub in client[9]])
        (setname,) = self.call("COMMAND", "INFO", "client|setname")
        self.assertEqual(setname[:2], ["client|setname", 3])
        self.assertEqual(len(self.call("COMMAND", "INFO")), len(self.table))

    def test_docs(self) -> None:
        docs = self.call("COMMAND", "DOCS", "get", "nope")
        self.assertEqual(list(docs), ["get"])
        self.assertEqual(docs["get"]["summary"], "Get a key")
        self.assertEqual(docs["get"]["group"], "string")
        self.assertIn("since", docs["get"])
        everything = self.call("COMMAND", "DOCS")
        self.assertEqual(set(everything), {cmd.name for cmd in self.table})
        self.assertIn("client|id", everything["client"]["subcommands"])

    def test_list(self) -> None:
        self.assertEqual(sorted(self.call("COMMAND", "LIST")), sorted(c.name for c in self.table))
        self.assertEqual(
            sorted(self.call("COMMAND", "LIST", "FILTERBY", "PATTERN", "c*")), ["client", "command"]
        )
        self.assertEqual(self.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "write"), ["mset"])
        self.assertEqual(self.call("COMMAND", "LIST", "x"), ErrorReply("ERR syntax error"))

    def test_getkeys(self) -> None:
        self.assertEqual(self.call("COMMAND", "GETKEYS", "get", "k"), [b"k"])
        self.assertEqual(self.call("COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"), [b"a", b"b"])
        self.assertEqual(
            self.call("COMMAND", "GETKEYS", "nope", "k"),
            ErrorReply("ERR Invalid command specified"),
        )
        self.assertEqual(
            self.call("COMMAND", "GETKEYS", "get"),
            ErrorReply("ERR Invalid number of arguments specified for command"),
        )
        self.assertEqual(
            self.call("COMMAND", "GETKEYS", "ping", "x"),
            ErrorReply("ERR The command has no key arguments"),
        )

    def test_unknown_subcommand(self) -> None:
        self.assertEqual(
            self.call("COMMAND", "FOO"),
            ErrorReply("ERR unknown subcommand 'FOO'. Try COMMAND HELP."),
        )
