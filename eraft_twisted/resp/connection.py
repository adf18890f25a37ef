"""Connection-level commands every RESP service answers: PING, ECHO, QUIT,
SELECT, AUTH, HELLO, CLIENT and COMMAND (the last one lists a table's
commands with their key positions, so cluster clients can route)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .. import REDIS_VERSION
from .commands import Command, CommandError, CommandTable, arg_text, wrong_arity
from .encoder import OK, PONG, Reply, SimpleString, Verbatim
from .parser import parse_int64
from .state import ConnectionState

__all__ = ["ServerInfo", "register_connection_commands"]


@dataclass
class ServerInfo:
    """What HELLO and friends report about the server.

    A field may be a zero-argument callable (e.g. ``role`` following the
    node's Raft role); it is called each time the value is needed.
    """

    server: str | Callable[[], str] = "redis"
    version: str | Callable[[], str] = REDIS_VERSION
    mode: str | Callable[[], str] = "standalone"
    role: str | Callable[[], str] = "master"

    def get(self, name: str) -> str:
        """The current value of field ``name``."""
        value = getattr(self, name)
        return str(value() if callable(value) else value)


InfoField = str | Callable[[], str]
"""A :class:`ServerInfo` field: a value, or a callable giving the current one."""


def _to_server_info(info: ServerInfo | Mapping[str, InfoField] | None) -> ServerInfo:
    if info is None:
        return ServerInfo()
    if isinstance(info, ServerInfo):
        return info
    return ServerInfo(**dict(info))


def _int_arg(raw: bytes, message: str = "value is not an integer or out of range") -> int:
    value = parse_int64(raw)
    if value is None:
        raise CommandError(message)
    return value


def _valid_name(raw: bytes) -> bool:
    # Redis allows only printable non-space ASCII in client names and lib info.
    return all(0x21 <= b <= 0x7E for b in raw)


def _set_name(conn: ConnectionState, raw: bytes) -> None:
    if not _valid_name(raw):
        raise CommandError("Client names cannot contain spaces, newlines or special characters.")
    conn.name = raw.decode("ascii") or None


def register_connection_commands(
    table: CommandTable, server_info: ServerInfo | Mapping[str, InfoField] | None = None
) -> None:
    """Register PING, ECHO, QUIT, SELECT, AUTH, HELLO, CLIENT and COMMAND on ``table``.

    ``server_info`` is a :class:`ServerInfo` or a dict of its fields.
    """
    info = _to_server_info(server_info)
    conn_cmds = {"group": "connection"}

    def ping(conn: ConnectionState, argv: list[bytes]) -> SimpleString | bytes:
        if len(argv) > 2:
            raise wrong_arity("ping")
        return PONG if len(argv) == 1 else argv[1]

    def echo(conn: ConnectionState, argv: list[bytes]) -> bytes:
        return argv[1]

    def quit_(conn: ConnectionState, argv: list[bytes]) -> SimpleString:
        conn.close_after_reply()
        return OK

    def select(conn: ConnectionState, argv: list[bytes]) -> SimpleString:
        if _int_arg(argv[1]) != 0:
            raise CommandError("DB index is out of range")
        conn.db = 0
        return OK

    def auth(conn: ConnectionState, argv: list[bytes]) -> SimpleString:
        if len(argv) > 3:
            raise CommandError("syntax error")
        if len(argv) == 2:
            raise CommandError(
                "AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        _authenticate(conn, argv[1])
        return OK

    def hello(conn: ConnectionState, argv: list[bytes]) -> dict[str, Reply]:
        version = conn.protocol_version
        if len(argv) >= 2:
            version = _int_arg(argv[1], "Protocol version is not an integer or out of range")
            if version not in (2, 3):
                raise CommandError("unsupported protocol version", code="NOPROTO")
        user: bytes | None = None
        name: bytes | None = None
        j = 2
        while j < len(argv):
            opt = argv[j].upper()
            more = len(argv) - 1 - j
            if opt == b"AUTH" and more >= 2:
                user = argv[j + 1]
                j += 2
            elif opt == b"SETNAME" and more >= 1:
                name = argv[j + 1]
                j += 1
            else:
                raise CommandError(f"Syntax error in HELLO option '{arg_text(argv[j])}'")
            j += 1
        if user is not None:
            _authenticate(conn, user)
        if name is not None:
            _set_name(conn, name)
        conn.protocol_version = version
        return {
            "server": info.get("server"),
            "version": info.get("version"),
            "proto": version,
            "id": conn.id,
            "mode": info.get("mode"),
            "role": info.get("role"),
            "modules": [],
        }

    table.register("ping", -1, "fast", ping, 0, 0, 0, summary="Ping the server", **conn_cmds)
    table.register("echo", 2, "fast", echo, 0, 0, 0, summary="Echo the given string", **conn_cmds)
    table.register(
        "quit", -1, "fast no-auth", quit_, 0, 0, 0, summary="Close the connection", **conn_cmds
    )
    table.register(
        "select", 2, "fast", select, 0, 0, 0, summary="Change the selected database", **conn_cmds
    )
    table.register("auth", -2, "fast no-auth", auth, 0, 0, 0, summary="Authenticate", **conn_cmds)
    table.register(
        "hello",
        -1,
        "fast no-auth",
        hello,
        0,
        0,
        0,
        summary="Handshake with the server, optionally switching protocol version",
        since="6.0.0",
        **conn_cmds,
    )
    _register_client(table)
    _register_command(table)


def _authenticate(conn: ConnectionState, user: bytes) -> None:
    # No passwords are configured: the default user is "nopass", like a stock Redis.
    if user != b"default":
        raise CommandError("invalid username-password pair or user is disabled.", code="WRONGPASS")
    conn.user = "default"


def _text_reply(conn: ConnectionState, text: str) -> Verbatim | bytes:
    return Verbatim(text) if conn.protocol_version == 3 else text.encode()


def _register_client(table: CommandTable) -> None:
    table.register(
        "client",
        -2,
        "",
        None,
        0,
        0,
        0,
        summary="A container for client connection commands",
        group="connection",
        since="2.4.0",
    )

    def client_id(conn: ConnectionState, argv: list[bytes]) -> int:
        return conn.id

    def setname(conn: ConnectionState, argv: list[bytes]) -> SimpleString:
        _set_name(conn, argv[2])
        return OK

    def getname(conn: ConnectionState, argv: list[bytes]) -> bytes | None:
        return conn.name.encode() if conn.name else None

    def setinfo(conn: ConnectionState, argv: list[bytes]) -> SimpleString:
        attr = argv[2].lower()
        if attr not in (b"lib-name", b"lib-ver"):
            raise CommandError(f"Unrecognized option '{arg_text(argv[2])}'")
        if not _valid_name(argv[3]):
            raise CommandError(
                f"{attr.decode()} cannot contain spaces, newlines or special characters."
            )
        value = argv[3].decode("ascii") or None
        if attr == b"lib-name":
            conn.lib_name = value
        else:
            conn.lib_ver = value
        return OK

    def info(conn: ConnectionState, argv: list[bytes]) -> Verbatim | bytes:
        return _text_reply(conn, conn.info_line() + "\n")

    def client_list(conn: ConnectionState, argv: list[bytes]) -> Verbatim | bytes:
        clients = list(conn.registry) if conn.registry is not None else [conn]
        i = 2
        while i < len(argv):
            opt = argv[i].upper()
            if opt == b"TYPE" and i + 1 < len(argv):
                kind = argv[i + 1].lower()
                if kind not in (b"normal", b"master", b"replica", b"slave", b"pubsub"):
                    raise CommandError(f"Unknown client type '{arg_text(argv[i + 1])}'")
                if kind != b"normal":
                    clients = []
                i += 2
            elif opt == b"ID" and i + 1 < len(argv):
                ids = set()
                for raw in argv[i + 1 :]:
                    try:
                        ids.add(int(raw))
                    except ValueError:
                        raise CommandError("Invalid client ID") from None
                clients = [c for c in clients if c.id in ids]
                i = len(argv)
            else:
                raise CommandError("syntax error")
        return _text_reply(conn, "".join(c.info_line() + "\n" for c in clients))

    def help_(conn: ConnectionState, argv: list[bytes]) -> list[SimpleString]:
        return [
            SimpleString(line)
            for line in (
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "LIST [TYPE <normal|master|replica|pubsub>] [ID <id> [<id> ...]]",
                "    Return information about client connections.",
                "SETINFO <option> <value>",
                "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "HELP",
                "    Print this help.",
            )
        ]

    sub = table.register_subcommand
    sub("client", "id", 2, "fast", client_id, summary="Return the client's id", since="5.0.0")
    sub("client", "setname", 3, "fast", setname, summary="Set the connection name")
    sub("client", "getname", 2, "fast", getname, summary="Return the connection name")
    sub(
        "client",
        "setinfo",
        4,
        "fast",
        setinfo,
        summary="Set client or connection specific info",
        since="7.2.0",
    )
    sub("client", "info", 2, "", info, summary="Return this client's info", since="6.2.0")
    sub("client", "list", -2, "admin", client_list, summary="List client connections")
    sub("client", "help", 2, "fast", help_, summary="Show helpful text", since="5.0.0")


def _register_command(table: CommandTable) -> None:
    def command(conn: ConnectionState, argv: list[bytes]) -> list[list[Reply]]:
        return [cmd.info() for cmd in table]

    def count(conn: ConnectionState, argv: list[bytes]) -> int:
        return len(table)

    def info(conn: ConnectionState, argv: list[bytes]) -> list[list[Reply] | None]:
        if len(argv) == 2:
            return [cmd.info() for cmd in table]
        out: list[list[Reply] | None] = []
        for name in argv[2:]:
            cmd = _lookup_fullname(table, name)
            out.append(cmd.info() if cmd is not None else None)
        return out

    def docs(conn: ConnectionState, argv: list[bytes]) -> dict[str, dict[str, Reply]]:
        if len(argv) == 2:
            return {cmd.name: cmd.docs() for cmd in table}
        out: dict[str, dict[str, Reply]] = {}
        for name in argv[2:]:
            cmd = _lookup_fullname(table, name)
            if cmd is not None:
                out[cmd.fullname] = cmd.docs()
        return out

    def list_(conn: ConnectionState, argv: list[bytes]) -> list[str]:
        names = [cmd.name for cmd in table]
        if len(argv) == 2:
            return names
        if len(argv) == 5 and argv[2].upper() == b"FILTERBY":
            kind, arg = argv[3].upper(), arg_text(argv[4])
            if kind == b"PATTERN":
                return [n for n in names if fnmatch.fnmatchcase(n, arg.lower())]
            if kind == b"ACLCAT":
                cat = "@" + arg.lower().lstrip("@")
                return [cmd.name for cmd in table if cat in cmd.acl_categories]
        raise CommandError("syntax error")

    def getkeys(conn: ConnectionState, argv: list[bytes]) -> list[bytes]:
        target = argv[2:]
        cmd = table.resolve(target)
        if cmd is None:
            raise CommandError("Invalid command specified")
        if not cmd.arity_ok(len(target)):
            raise CommandError("Invalid number of arguments specified for command")
        keys = cmd.keys(target)
        if not keys:
            raise CommandError("The command has no key arguments")
        return keys

    def help_(conn: ConnectionState, argv: list[bytes]) -> list[SimpleString]:
        return [
            SimpleString(line)
            for line in (
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all commands.",
                "COUNT",
                "    Return the total number of commands in this server.",
                "LIST [FILTERBY (PATTERN <pattern>|ACLCAT <category>)]",
                "    Return a list of all commands in this server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple commands.",
                "GETKEYS <full-command>",
                "    Return the keys from a full command.",
                "HELP",
                "    Print this help.",
            )
        ]

    table.register(
        "command",
        -1,
        "loading stale",
        command,
        0,
        0,
        0,
        summary="Get array of command details",
        group="server",
        since="2.8.13",
    )
    sub = table.register_subcommand
    sub("command", "count", 2, "loading stale", count, summary="Get total number of commands")
    sub("command", "info", -2, "loading stale", info, summary="Get details about commands")
    sub("command", "docs", -2, "loading stale", docs, summary="Get documentary information")
    sub("command", "list", -2, "loading stale", list_, summary="Get a list of command names")
    sub("command", "getkeys", -3, "loading stale", getkeys, summary="Extract keys from a command")
    sub("command", "help", 2, "loading stale", help_, summary="Show helpful text")


def _lookup_fullname(table: CommandTable, name: bytes) -> Command | None:
    parent, sep, sub = name.partition(b"|")
    cmd = table.get(parent)
    if cmd is None or not sep:
        return cmd
    return cmd.subcommands.get(sub.lower())
