"""Set commands (SADD, SMEMBERS, SPOP, SINTER, SSCAN ...), declared as
parse -> operation -> reply (see :mod:`.datacmd`)."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from ..kv.statemachine import INT64_MIN, parse_int
from ..resp.commands import CommandError, CommandTable
from ..resp.encoder import Reply
from ..resp.state import ConnectionState
from .datacmd import DataCommands, OpCall, as_set, numkeys_at, seed

_CURSOR = re.compile(rb"[+-]?[0-9]+")


def _syntax() -> CommandError:
    return CommandError("syntax error")


def _spop(argv: list[bytes]) -> OpCall:
    if len(argv) > 3:
        raise _syntax()
    count = None
    if len(argv) == 3:
        count = parse_int(argv[2])
        if count is None or count < 0:
            raise CommandError("value is out of range, must be positive")
    return OpCall("spop", (argv[1], count, seed()))


def _srandmember(argv: list[bytes]) -> OpCall:
    if len(argv) > 3:
        raise _syntax()
    count = None
    if len(argv) == 3:
        count = parse_int(argv[2])
        if count is None:
            raise CommandError("value is not an integer or out of range")
        if count == INT64_MIN:
            raise CommandError(
                "value is out of range, value must between "
                "-9223372036854775807 and 9223372036854775807"
            )
    return OpCall("srandmember", (argv[1], count, seed()))


def _sintercard(argv: list[bytes]) -> OpCall:
    numkeys = parse_int(argv[1])
    if numkeys is None or numkeys <= 0:
        raise CommandError("numkeys should be greater than 0")
    if numkeys > len(argv) - 2:
        raise CommandError("Number of keys can't be greater than number of args")
    limit = 0
    i = 2 + numkeys
    while i < len(argv):
        if argv[i].lower() == b"limit" and i + 1 < len(argv):
            value = parse_int(argv[i + 1])
            if value is None or value < 0:
                raise CommandError("LIMIT can't be negative")
            limit = value
            i += 2
        else:
            raise _syntax()
    return OpCall("sintercard", (argv[2 : 2 + numkeys], limit))


def cursor_start(cursor: int) -> bytes | None:
    """The member an SSCAN cursor resumes at (None: the scan is over).
    A cursor is ``0x01 + member`` read as a big-endian number."""
    if cursor < 0:
        return None
    raw = cursor.to_bytes((cursor.bit_length() + 7) // 8, "big")
    return raw[1:]


def start_cursor(start: bytes | None) -> bytes:
    """The cursor (decimal) that resumes at member ``start`` (None: ``0``)."""
    if start is None:
        return b"0"
    return str(int.from_bytes(b"\x01" + start, "big")).encode()


def _sscan(argv: list[bytes]) -> OpCall:
    if not _CURSOR.fullmatch(argv[2]):
        raise CommandError("invalid cursor")
    start = cursor_start(int(argv[2]))
    count, match = 10, None
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"count" and i + 1 < len(argv):
            count_arg = parse_int(argv[i + 1])
            if count_arg is None:
                raise CommandError("value is not an integer or out of range")
            if count_arg < 1:
                raise _syntax()
            count = count_arg
        elif opt == b"match" and i + 1 < len(argv):
            match = argv[i + 1]
        else:
            raise _syntax()
        i += 2
    return OpCall("sscan", (argv[1], start, match, count))


def _scan_reply(result: Any, conn: ConnectionState) -> Reply:
    start, members = result
    return [start_cursor(start), members]


def _keys(name: str, argv: list[bytes]) -> OpCall:
    return OpCall(name, (argv[1:],))


class SetCommands:
    """Registers the set commands on a :class:`DataCommands`."""

    def __init__(self, data: DataCommands) -> None:
        self.data = data

    def register(self, table: CommandTable) -> None:
        add = partial(self.data.add, table, group="set")
        fast, oom = ("fast",), ("denyoom", "fast")
        add("sadd", -3, lambda a: OpCall("sadd", (a[1], a[2:])), flags=oom)
        add("srem", -3, lambda a: OpCall("srem", (a[1], a[2:])), flags=fast)
        add("smembers", 2, lambda a: OpCall("smembers", (a[1],)), as_set)
        add("sismember", 3, lambda a: OpCall("sismember", (a[1], a[2])), flags=fast)
        add("smismember", -3, lambda a: OpCall("smismember", (a[1], a[2:])), flags=fast)
        add("scard", 2, lambda a: OpCall("scard", (a[1],)), flags=fast)
        add("spop", -2, _spop, as_set, flags=fast)
        add("srandmember", -2, _srandmember)
        add("smove", 4, lambda a: OpCall("smove", (a[1], a[2], a[3])), last_key=2, flags=fast)
        add("sscan", -3, _sscan, _scan_reply)
        for name in ("sinter", "sunion", "sdiff"):
            add(name, -2, partial(_keys, name), as_set, last_key=-1)
        for name in ("sinterstore", "sunionstore", "sdiffstore"):
            add(name, -3, partial(_keys, name), last_key=-1, flags=("denyoom",))
        add(
            "sintercard",
            -3,
            _sintercard,
            first_key=0,
            last_key=0,
            step=0,
            flags=("movablekeys",),
            keys=numkeys_at(1),
        )
