"""Hash commands (HSET, HGET, ...), declared as parse -> operation -> reply."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..kv.hashutil import parse_cursor, parse_ll
from ..resp.commands import CommandError, CommandTable, wrong_arity
from ..resp.encoder import Reply
from ..resp.state import ConnectionState
from .datacmd import DataCommands, OpCall, as_map, seed

_LONG_MAX = (1 << 63) - 1


def _pairs(argv: list[bytes]) -> list[bytes]:
    if len(argv) % 2:
        raise wrong_arity(argv[0].decode("latin-1").lower())
    return argv[2:]


def _hset(argv: list[bytes]) -> OpCall:
    return OpCall("hset", (argv[1], _pairs(argv)))


def _hmset(argv: list[bytes]) -> OpCall:
    return OpCall("hmset", (argv[1], _pairs(argv)))


def _integer(raw: bytes) -> int:
    value = parse_ll(raw)
    if value is None:
        raise CommandError("value is not an integer or out of range")
    return value


def _hincrby(argv: list[bytes]) -> OpCall:
    return OpCall("hincrby", (argv[1], argv[2], _integer(argv[3])))


def _hscan(argv: list[bytes]) -> OpCall:
    start = parse_cursor(argv[2])
    if start is None:
        raise CommandError("invalid cursor")
    return OpCall("hscan", (argv[1], start, argv[3:]))


def _hrandfield(argv: list[bytes]) -> OpCall:
    if len(argv) == 2:
        return OpCall("hrandfield", (argv[1], None, False, seed()))
    count = _integer(argv[2])
    if count < -_LONG_MAX:
        raise CommandError(
            f"value is out of range, value must between {-_LONG_MAX} and {_LONG_MAX}"
        )
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withvalues"):
        raise CommandError("syntax error")
    withvalues = len(argv) == 4
    if withvalues and not -_LONG_MAX // 2 <= count <= _LONG_MAX // 2:
        raise CommandError("value is out of range")
    return OpCall("hrandfield", (argv[1], count, withvalues, seed()))


def _field_value_pairs(result: Any, conn: ConnectionState) -> Reply:
    """HRANDFIELD's ``[[field, value], ...]``: flat in RESP2."""
    if conn.protocol_version == 3 or not isinstance(result, list):
        return result  # type: ignore[no-any-return]
    if result and isinstance(result[0], list):
        return [x for pair in result for x in pair]
    return result


class HashCommands:
    """Registers the hash commands on a :class:`DataCommands`."""

    def __init__(self, data: DataCommands) -> None:
        self.data = data

    def register(self, table: CommandTable) -> None:
        add = partial(self.data.add, table, group="hash")
        add("hset", -4, _hset)
        add("hsetnx", 4, lambda a: OpCall("hsetnx", (a[1], a[2], a[3])))
        add("hmset", -4, _hmset)
        add("hget", 3, lambda a: OpCall("hget", (a[1], a[2])))
        add("hmget", -3, lambda a: OpCall("hmget", (a[1], a[2:])))
        add("hdel", -3, lambda a: OpCall("hdel", (a[1], a[2:])))
        add("hlen", 2, lambda a: OpCall("hlen", (a[1],)))
        add("hexists", 3, lambda a: OpCall("hexists", (a[1], a[2])))
        add("hstrlen", 3, lambda a: OpCall("hstrlen", (a[1], a[2])))
        add("hgetall", 2, lambda a: OpCall("hgetall", (a[1],)), as_map)
        add("hkeys", 2, lambda a: OpCall("hkeys", (a[1],)))
        add("hvals", 2, lambda a: OpCall("hvals", (a[1],)))
        add("hincrby", 4, _hincrby)
        add("hincrbyfloat", 4, lambda a: OpCall("hincrbyfloat", (a[1], a[2], a[3])))
        add("hscan", -3, _hscan)
        add("hrandfield", -2, _hrandfield, _field_value_pairs)
