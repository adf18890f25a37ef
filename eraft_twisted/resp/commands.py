"""The command table: lookup, Redis arity checks, dispatch, and connection-level commands.

The table knows nothing about which data commands exist: other layers
register handlers ``handler(conn, argv) -> reply | Deferred[reply]`` (a
coroutine is accepted too). Arity follows Redis: a positive arity is the
exact argc including the command name, a negative one is a minimum.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import CoroutineType
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .encoder import OK, PONG, ErrorReply, SimpleString, Verbatim
from .parser import parse_int64
from .state import ConnectionState

__all__ = [
    "INTERNAL_ERROR",
    "Command",
    "CommandError",
    "CommandTable",
    "Handler",
    "ServerInfo",
    "register_connection_commands",
    "unknown_command_reply",
    "unknown_subcommand",
    "wrong_arity",
]

log = Logger()

Handler = Callable[[ConnectionState, list[bytes]], Any]

INTERNAL_ERROR = ErrorReply("ERR internal error")


class CommandError(Exception):
    """Raise from a handler to reply with an error: ``-{code} {message}``.

    ``CommandError("DB index is out of range")`` replies
    ``-ERR DB index is out of range``; pass ``code`` for other kinds, e.g.
    ``CommandError("3999 127.0.0.1:6381", code="MOVED")``.
    """

    def __init__(self, message: str, code: str = "ERR") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def reply(self) -> ErrorReply:
        """The error reply value."""
        return ErrorReply(f"{self.code} {self.message}")


def wrong_arity(fullname: str) -> CommandError:
    """Redis's wrong-number-of-arguments error for ``fullname`` (e.g. ``get``, ``client|setname``)."""
    return CommandError(f"wrong number of arguments for '{fullname}' command")


def unknown_subcommand(command: str, sub: bytes) -> CommandError:
    """Redis's error for an unknown subcommand of a container command."""
    return CommandError(
        f"unknown subcommand '{_text(_cstr(sub)[:128])}'. Try {command.upper()} HELP."
    )


def _text(raw: bytes) -> str:
    # surrogateescape lets arbitrary client bytes round-trip through the encoder unchanged.
    return raw.decode("utf-8", "surrogateescape")


def _cstr(raw: bytes) -> bytes:
    # Redis formats arguments with %s, which stops at the first NUL.
    nul = raw.find(b"\x00")
    return raw if nul < 0 else raw[:nul]


def unknown_command_reply(argv: list[bytes]) -> ErrorReply:
    """Redis 7's reply for an unknown command, byte for byte."""
    args = b""
    i = 1
    while i < len(argv) and len(args) < 128:
        args += b"'" + _cstr(argv[i])[: 128 - len(args)] + b"' "
        i += 1
    name = _cstr(argv[0])[:128]
    return ErrorReply(
        f"ERR unknown command '{_text(name)}', with args beginning with: {_text(args)}"
    )


def _acl_categories(flags: tuple[str, ...], group: str) -> tuple[str, ...]:
    cats: list[str] = []
    if "write" in flags:
        cats.append("@write")
    if "readonly" in flags:
        cats.append("@read")
    if "admin" in flags:
        cats += ["@admin", "@dangerous"]
    if group in ("connection", "string", "generic", "server", "keyspace"):
        cats.append("@keyspace" if group == "generic" else f"@{group}")
    cats.append("@fast" if "fast" in flags else "@slow")
    return tuple(cats)


@dataclass(eq=False)
class Command:
    """One registered command (or subcommand) and its metadata for COMMAND INFO/DOCS."""

    name: str
    arity: int
    flags: tuple[str, ...]
    handler: Handler | None
    first_key: int = 1
    last_key: int = 1
    step: int = 1
    summary: str = ""
    group: str = "generic"
    since: str = "1.0.0"
    complexity: str = ""
    acl_categories: tuple[str, ...] = ()
    parent: Command | None = None
    subcommands: dict[bytes, Command] = field(default_factory=dict)

    @property
    def fullname(self) -> str:
        """``name``, or ``parent|name`` for a subcommand, as Redis reports it."""
        return self.name if self.parent is None else f"{self.parent.name}|{self.name}"

    def arity_ok(self, argc: int) -> bool:
        """Whether ``argc`` (including the name) satisfies this command's arity."""
        arity = self.arity
        return argc == arity if arity > 0 else argc >= -arity

    def keys(self, argv: list[bytes]) -> list[bytes]:
        """The key arguments of ``argv`` per first_key/last_key/step."""
        if self.first_key <= 0:
            return []
        last = self.last_key if self.last_key >= 0 else len(argv) + self.last_key
        step = self.step if self.step > 0 else 1
        return argv[self.first_key : min(last, len(argv) - 1) + 1 : step]

    def info(self) -> list[Any]:
        """This command's COMMAND INFO entry (the Redis 7 ten-element layout)."""
        key_specs: list[Any] = []
        if self.first_key > 0:
            last = self.last_key - self.first_key if self.last_key >= 0 else self.last_key
            if "write" in self.flags:
                spec_flags = {SimpleString("RW"), SimpleString("UPDATE")}
            else:
                spec_flags = {SimpleString("RO"), SimpleString("ACCESS")}
            key_specs.append(
                {
                    "flags": spec_flags,
                    "begin_search": {"type": "index", "spec": {"index": self.first_key}},
                    "find_keys": {
                        "type": "range",
                        "spec": {"lastkey": last, "keystep": self.step, "limit": 0},
                    },
                }
            )
        return [
            self.fullname,
            self.arity,
            {SimpleString(f) for f in self.flags},
            self.first_key,
            self.last_key,
            self.step,
            {SimpleString(c) for c in self.acl_categories},
            set(),
            key_specs,
            [sub.info() for sub in self.subcommands.values()],
        ]

    def docs(self) -> dict[str, Any]:
        """This command's COMMAND DOCS map."""
        doc: dict[str, Any] = {
            "summary": self.summary or f"{self.fullname.upper()} command",
            "since": self.since,
            "group": self.group,
        }
        if self.complexity:
            doc["complexity"] = self.complexity
        if self.subcommands:
            doc["subcommands"] = {sub.fullname: sub.docs() for sub in self.subcommands.values()}
        return doc


def _flags(flags: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(flags, str):
        return tuple(flags.split())
    return tuple(flags)


class CommandTable:
    """Registered commands, looked up case-insensitively, and the dispatcher."""

    def __init__(self) -> None:
        self._by_name: dict[bytes, Command] = {}
        self._commands: dict[str, Command] = {}

    def register(
        self,
        name: str,
        arity: int,
        flags: Iterable[str] | str,
        handler: Handler | None,
        first_key: int = 1,
        last_key: int = 1,
        step: int = 1,
        *,
        summary: str = "",
        group: str = "generic",
        since: str = "1.0.0",
        complexity: str = "",
        acl_categories: Iterable[str] | None = None,
    ) -> Command:
        """Register (or replace) a command.

        ``handler(conn, argv)`` returns a reply value or a Deferred firing
        with one. ``handler=None`` makes a container whose subcommands are
        added with :meth:`register_subcommand`. Commands without keys pass
        ``first_key=last_key=step=0``.
        """
        lname = name.lower()
        fl = _flags(flags)
        cmd = Command(
            name=lname,
            arity=arity,
            flags=fl,
            handler=handler,
            first_key=first_key,
            last_key=last_key,
            step=step,
            summary=summary,
            group=group,
            since=since,
            complexity=complexity,
            acl_categories=tuple(acl_categories)
            if acl_categories is not None
            else _acl_categories(fl, group),
        )
        old = self._commands.get(lname)
        if old is not None:
            cmd.subcommands = old.subcommands
            for sub in cmd.subcommands.values():
                sub.parent = cmd
        self._commands[lname] = cmd
        raw = lname.encode()
        # Clients mostly send all-lowercase or all-uppercase names: both hit first try.
        self._by_name[raw] = cmd
        self._by_name[raw.upper()] = cmd
        return cmd

    def register_subcommand(
        self,
        parent: str,
        name: str,
        arity: int,
        flags: Iterable[str] | str,
        handler: Handler,
        first_key: int = 0,
        last_key: int = 0,
        step: int = 0,
        *,
        summary: str = "",
        since: str = "1.0.0",
        complexity: str = "",
        acl_categories: Iterable[str] | None = None,
    ) -> Command:
        """Register ``parent name`` (e.g. ``CLIENT SETNAME``); arity counts both words."""
        owner = self._commands.get(parent.lower())
        if owner is None:
            raise KeyError(f"register the container command {parent!r} first")
        fl = _flags(flags)
        sub = Command(
            name=name.lower(),
            arity=arity,
            flags=fl,
            handler=handler,
            first_key=first_key,
            last_key=last_key,
            step=step,
            summary=summary,
            group=owner.group,
            since=since,
            complexity=complexity,
            acl_categories=tuple(acl_categories)
            if acl_categories is not None
            else _acl_categories(fl, owner.group),
            parent=owner,
        )
        owner.subcommands[name.lower().encode()] = sub
        return sub

    def get(self, name: bytes | str) -> Command | None:
        """The command called ``name`` (any case), or None."""
        raw = name.encode() if isinstance(name, str) else name
        cmd = self._by_name.get(raw)
        if cmd is None:
            cmd = self._by_name.get(raw.lower())
        return cmd

    def resolve(self, argv: list[bytes]) -> Command | None:
        """The command or subcommand ``argv`` names, or None."""
        cmd = self.get(argv[0])
        if cmd is not None and cmd.subcommands and len(argv) > 1:
            sub = cmd.subcommands.get(argv[1].lower())
            if sub is not None:
                return sub
        return cmd

    def __contains__(self, name: object) -> bool:
        return isinstance(name, (bytes, str)) and self.get(name) is not None

    def __iter__(self) -> Iterator[Command]:
        return iter(list(self._commands.values()))

    def __len__(self) -> int:
        return len(self._commands)

    def dispatch(self, conn: ConnectionState, argv: list[bytes]) -> Any:
        """Run one command; returns a reply value or a Deferred that never fails.

        Unknown commands and wrong arity become Redis's error replies;
        CommandError becomes its error reply; any other exception is logged
        and becomes ``ERR internal error``.
        """
        cmd = self._by_name.get(argv[0])
        if cmd is None:
            cmd = self._by_name.get(argv[0].lower())
            if cmd is None:
                return unknown_command_reply(argv)
        argc = len(argv)
        arity = cmd.arity
        if (argc != arity) if arity > 0 else (argc < -arity):
            return wrong_arity(cmd.name).reply
        if cmd.subcommands and argc > 1:
            sub = cmd.subcommands.get(argv[1].lower())
            if sub is None:
                return unknown_subcommand(cmd.name, argv[1]).reply
            if not sub.arity_ok(argc):
                return wrong_arity(sub.fullname).reply
            cmd = sub
        handler = cmd.handler
        if handler is None:
            # A container called without a subcommand (its arity allowed argc 1).
            return wrong_arity(cmd.name).reply
        conn.last_command = cmd.fullname
        try:
            result = handler(conn, argv)
        except CommandError as e:
            return e.reply
        except Exception:
            log.failure("internal error in command {command}", command=cmd.fullname)
            return INTERNAL_ERROR
        if isinstance(result, Deferred):
            return result.addErrback(self._failed, conn, cmd.fullname)
        if type(result) is CoroutineType:
            return Deferred.fromCoroutine(result).addErrback(self._failed, conn, cmd.fullname)
        return result

    @staticmethod
    def _failed(failure: Failure, conn: ConnectionState, command: str) -> ErrorReply:
        if isinstance(failure.value, CommandError):
            return failure.value.reply
        if conn.closed:
            # Nobody is waiting for this reply any more.
            log.debug("command {command} failed after its client left", command=command)
        else:
            log.failure("internal error in command {command}", failure, command=command)
        return INTERNAL_ERROR


@dataclass
class ServerInfo:
    """What HELLO and friends report about the server.

    A field may be a zero-argument callable (e.g. ``role`` following the
    node's Raft role); it is called each time the value is needed.
    """

    server: str | Callable[[], str] = "redis"
    version: str | Callable[[], str] = "7.0.0"
    mode: str | Callable[[], str] = "standalone"
    role: str | Callable[[], str] = "master"

    def get(self, name: str) -> str:
        """The current value of field ``name``."""
        value = getattr(self, name)
        return str(value() if callable(value) else value)


def _to_server_info(info: ServerInfo | Mapping[str, Any] | None) -> ServerInfo:
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
    table: CommandTable, server_info: ServerInfo | Mapping[str, Any] | None = None
) -> None:
    """Register PING, ECHO, QUIT, SELECT, AUTH, HELLO, CLIENT and COMMAND on ``table``.

    ``server_info`` is a :class:`ServerInfo` or a dict of its fields.
    """
    info = _to_server_info(server_info)
    conn_cmds = {"group": "connection"}

    def ping(conn: ConnectionState, argv: list[bytes]) -> Any:
        if len(argv) > 2:
            raise wrong_arity("ping")
        return PONG if len(argv) == 1 else argv[1]

    def echo(conn: ConnectionState, argv: list[bytes]) -> Any:
        return argv[1]

    def quit_(conn: ConnectionState, argv: list[bytes]) -> Any:
        conn.close_after_reply()
        return OK

    def select(conn: ConnectionState, argv: list[bytes]) -> Any:
        if _int_arg(argv[1]) != 0:
            raise CommandError("DB index is out of range")
        conn.db = 0
        return OK

    def auth(conn: ConnectionState, argv: list[bytes]) -> Any:
        if len(argv) > 3:
            raise CommandError("syntax error")
        if len(argv) == 2:
            raise CommandError(
                "AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        _authenticate(conn, argv[1])
        return OK

    def hello(conn: ConnectionState, argv: list[bytes]) -> Any:
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
                raise CommandError(f"Syntax error in HELLO option '{_text(argv[j])}'")
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


def _text_reply(conn: ConnectionState, text: str) -> Any:
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

    def client_id(conn: ConnectionState, argv: list[bytes]) -> Any:
        return conn.id

    def setname(conn: ConnectionState, argv: list[bytes]) -> Any:
        _set_name(conn, argv[2])
        return OK

    def getname(conn: ConnectionState, argv: list[bytes]) -> Any:
        return conn.name.encode() if conn.name else None

    def setinfo(conn: ConnectionState, argv: list[bytes]) -> Any:
        attr = argv[2].lower()
        if attr not in (b"lib-name", b"lib-ver"):
            raise CommandError(f"Unrecognized option '{_text(argv[2])}'")
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

    def info(conn: ConnectionState, argv: list[bytes]) -> Any:
        return _text_reply(conn, conn.info_line() + "\n")

    def client_list(conn: ConnectionState, argv: list[bytes]) -> Any:
        clients = list(conn.registry) if conn.registry is not None else [conn]
        i = 2
        while i < len(argv):
            opt = argv[i].upper()
            if opt == b"TYPE" and i + 1 < len(argv):
                kind = argv[i + 1].lower()
                if kind not in (b"normal", b"master", b"replica", b"slave", b"pubsub"):
                    raise CommandError(f"Unknown client type '{_text(argv[i + 1])}'")
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

    def help_(conn: ConnectionState, argv: list[bytes]) -> Any:
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
    def command(conn: ConnectionState, argv: list[bytes]) -> Any:
        return [cmd.info() for cmd in table]

    def count(conn: ConnectionState, argv: list[bytes]) -> Any:
        return len(table)

    def info(conn: ConnectionState, argv: list[bytes]) -> Any:
        if len(argv) == 2:
            return [cmd.info() for cmd in table]
        out: list[Any] = []
        for name in argv[2:]:
            cmd = _lookup_fullname(table, name)
            out.append(cmd.info() if cmd is not None else None)
        return out

    def docs(conn: ConnectionState, argv: list[bytes]) -> Any:
        if len(argv) == 2:
            return {cmd.name: cmd.docs() for cmd in table}
        out: dict[str, Any] = {}
        for name in argv[2:]:
            cmd = _lookup_fullname(table, name)
            if cmd is not None:
                out[cmd.fullname] = cmd.docs()
        return out

    def list_(conn: ConnectionState, argv: list[bytes]) -> Any:
        names = [cmd.name for cmd in table]
        if len(argv) == 2:
            return names
        if len(argv) == 5 and argv[2].upper() == b"FILTERBY":
            kind, arg = argv[3].upper(), _text(argv[4])
            if kind == b"PATTERN":
                return [n for n in names if fnmatch.fnmatchcase(n, arg.lower())]
            if kind == b"ACLCAT":
                cat = "@" + arg.lower().lstrip("@")
                return [cmd.name for cmd in table if cat in cmd.acl_categories]
        raise CommandError("syntax error")

    def getkeys(conn: ConnectionState, argv: list[bytes]) -> Any:
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

    def help_(conn: ConnectionState, argv: list[bytes]) -> Any:
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
