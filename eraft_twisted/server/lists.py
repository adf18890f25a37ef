"""List commands (LPUSH, LPOP, LRANGE, LMOVE ...), declared as parse ->
operation -> reply (see :mod:`.datacmd`)."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..kv.lists import NIL_ARRAY
from ..resp.commands import CommandError, CommandTable
from ..resp.encoder import NullArray, Reply
from ..resp.parser import parse_int64
from ..resp.state import ConnectionState
from .datacmd import DataCommands, OpCall, plain

_NOT_INT = "value is not an integer or out of range"
_RANK_ZERO = (
    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
    "or use negative to start from the end of the list"
)


def _int(raw: bytes, message: str = _NOT_INT) -> int:
    n = parse_int64(raw)
    if n is None:
        raise CommandError(message)
    return n


def parse_side(raw: bytes) -> bool:
    """LEFT -> True, RIGHT -> False."""
    word = raw.lower()
    if word not in (b"left", b"right"):
        raise CommandError("syntax error")
    return word == b"left"


def _pop(op: str, argv: list[bytes]) -> OpCall:
    if len(argv) > 3:
        raise CommandError(f"wrong number of arguments for '{op}' command")
    if len(argv) == 2:
        return OpCall(op, (argv[1],))
    n = parse_int64(argv[2])
    if n is None or n < 0:
        raise CommandError("value is out of range, must be positive")
    return OpCall(op, (argv[1], n))


def _pop_shape(result: Any, conn: ConnectionState) -> Reply:
    if result is NIL_ARRAY:
        return NullArray
    return plain(result, conn)


def _lpos(argv: list[bytes]) -> OpCall:
    rank, count, maxlen = 1, None, 0
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        if i + 1 >= len(argv) or opt not in (b"rank", b"count", b"maxlen"):
            raise CommandError("syntax error")
        raw = argv[i + 1]
        if opt == b"rank":
            rank = _int(raw)
            if rank == 0:
                raise CommandError(_RANK_ZERO)
        elif opt == b"count":
            count = parse_int64(raw)
            if count is None or count < 0:
                raise CommandError("COUNT can't be negative")
        else:
            n = parse_int64(raw)
            if n is None or n < 0:
                raise CommandError("MAXLEN can't be negative")
            maxlen = n
        i += 2
    return OpCall("lpos", (argv[1], argv[2], rank, count, maxlen))


def _linsert(argv: list[bytes]) -> OpCall:
    where = argv[2].lower()
    if where not in (b"before", b"after"):
        raise CommandError("syntax error")
    return OpCall("linsert", (argv[1], where == b"before", argv[3], argv[4]))


class ListCommands:
    """Registers the list commands on a :class:`DataCommands`."""

    def __init__(self, data: DataCommands) -> None:
        self.data = data

    def register(self, table: CommandTable) -> None:
        add = partial(self.data.add, table, group="list")
        add("lpush", -3, lambda a: OpCall("lpush", (a[1], a[2:])))
        add("rpush", -3, lambda a: OpCall("rpush", (a[1], a[2:])))
        add("lpushx", -3, lambda a: OpCall("lpush", (a[1], a[2:], True)), write=True)
        add("rpushx", -3, lambda a: OpCall("rpush", (a[1], a[2:], True)), write=True)
        add("lpop", -2, partial(_pop, "lpop"), _pop_shape)
        add("rpop", -2, partial(_pop, "rpop"), _pop_shape)
        add("llen", 2, lambda a: OpCall("llen", (a[1],)))
        add("lrange", 4, lambda a: OpCall("lrange", (a[1], _int(a[2]), _int(a[3]))))
        add("lindex", 3, lambda a: OpCall("lindex", (a[1], a[2])))
        add("lset", 4, lambda a: OpCall("lset", (a[1], a[2], a[3])))
        add("lrem", 4, lambda a: OpCall("lrem", (a[1], _int(a[2]), a[3])))
        add("ltrim", 4, lambda a: OpCall("ltrim", (a[1], _int(a[2]), _int(a[3]))))
        add("linsert", 5, _linsert)
        add("lpos", -3, _lpos)
        two = partial(add, first_key=1, last_key=2)
        two(
            "lmove",
            5,
            lambda a: OpCall("lmove", (a[1], a[2], parse_side(a[3]), parse_side(a[4]))),
        )
        two("rpoplpush", 3, lambda a: OpCall("lmove", (a[1], a[2], False, True)), write=True)
