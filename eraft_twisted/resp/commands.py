"""The command table: lookup, Redis arity checks, flags, key positions, dispatch.

The table knows nothing about which data commands exist: other layers
register handlers ``handler(conn, argv) -> reply | Deferred[reply]`` (a
coroutine is accepted too). Arity follows Redis: a positive arity is the
exact argc including the command name, a negative one is a minimum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import CoroutineType
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from .encoder import ErrorReply, Reply, SimpleString
from .state import ConnectionState

__all__ = [
    "INTERNAL_ERROR",
    "Command",
    "CommandError",
    "CommandTable",
    "Handler",
    "Interceptor",
    "unknown_command_reply",
    "unknown_subcommand",
    "wrong_arity",
]

log = Logger()

Handler = Callable[[ConnectionState, list[bytes]], object]
"""A command: returns a reply value (see :data:`.encoder.Reply`), a Deferred
firing with one, or a coroutine returning one."""

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
        f"unknown subcommand '{arg_text(_cstr(sub)[:128])}'. Try {command.upper()} HELP."
    )


def arg_text(raw: bytes) -> str:
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
        f"ERR unknown command '{arg_text(name)}', with args beginning with: {arg_text(args)}"
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
    key_finder: Callable[[list[bytes]], list[bytes]] | None = None
    """For commands whose keys follow a count (SINTERCARD, ZUNIONSTORE...):
    finds them in ``argv`` (first_key/last_key/step cannot say where)."""

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
        if self.key_finder is not None:
            return self.key_finder(argv)
        if self.first_key <= 0:
            return []
        last = self.last_key if self.last_key >= 0 else len(argv) + self.last_key
        step = self.step if self.step > 0 else 1
        return argv[self.first_key : min(last, len(argv) - 1) + 1 : step]

    def info(self) -> list[Reply]:
        """This command's COMMAND INFO entry (the Redis 7 ten-element layout)."""
        key_specs: list[dict[str, Reply]] = []
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

    def docs(self) -> dict[str, Reply]:
        """This command's COMMAND DOCS map."""
        doc: dict[str, Reply] = {
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


class Interceptor(Protocol):
    """Sees a command before it runs (a MULTI queue): returns the reply
    instead of running it, or None to let it run."""

    def intercept(
        self,
        conn: ConnectionState,
        cmd: Command | None,
        argv: list[bytes],
        error: ErrorReply | None,
    ) -> object | None:
        """``cmd`` is None and ``error`` set for an unknown command or a
        wrong arity (which a MULTI must remember)."""
        ...


class CommandTable:
    """Registered commands, looked up case-insensitively, and the dispatcher."""

    def __init__(self) -> None:
        self._by_name: dict[bytes, Command] = {}
        self._commands: dict[str, Command] = {}
        self.interceptor: Interceptor | None = None
        """Consulted for connections with ``conn.data["multi"]`` set."""

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
        if first_key <= 0:
            step = 0  # no keys: Redis reports a step of 0
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

    def dispatch(self, conn: ConnectionState, argv: list[bytes]) -> object:
        """Run one command; returns a reply value or a Deferred that never fails.

        Unknown commands and wrong arity become Redis's error replies;
        CommandError becomes its error reply; any other exception is logged
        and becomes ``ERR internal error``.
        """
        cmd = self._by_name.get(argv[0])
        if cmd is None:
            cmd = self._by_name.get(argv[0].lower())
            if cmd is None:
                return self._refused(conn, argv, unknown_command_reply(argv))
        argc = len(argv)
        arity = cmd.arity
        if (argc != arity) if arity > 0 else (argc < -arity):
            return self._refused(conn, argv, wrong_arity(cmd.name).reply)
        if cmd.subcommands and argc > 1:
            sub = cmd.subcommands.get(argv[1].lower())
            if sub is None:
                return self._refused(conn, argv, unknown_subcommand(cmd.name, argv[1]).reply)
            if not sub.arity_ok(argc):
                return self._refused(conn, argv, wrong_arity(sub.fullname).reply)
            cmd = sub
        if conn.data and self.interceptor is not None and "multi" in conn.data:
            queued = self.interceptor.intercept(conn, cmd, argv, None)
            if queued is not None:
                return queued
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

    def _refused(self, conn: ConnectionState, argv: list[bytes], error: ErrorReply) -> object:
        if conn.data and self.interceptor is not None and "multi" in conn.data:
            self.interceptor.intercept(conn, None, argv, error)
        return error

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
