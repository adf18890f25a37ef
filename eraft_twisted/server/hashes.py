"""Hash commands (HSET, HGET, ...), declared as parse -> operation -> reply."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..kv.statemachine import INT64_MAX
from ..resp.commands import CommandError, CommandTable, wrong_arity
from ..resp.encoder import Reply
from ..resp.state import ConnectionState
from .args import int_arg, parse_scan, random_count, syntax
from .datacmd import DataCommands, OpCall, as_map, seed


def _pairs(argv: list[bytes]) -> list[bytes]:
    if len(argv) % 2:
        raise wrong_arity(argv[0].decode("latin-1").lower())
    return argv[2:]


def _hset(argv: list[bytes]) -> OpCall:
    return OpCall("hset", (argv[1], _pairs(argv)))


def _hmset(argv: list[bytes]) -> OpCall:
    return OpCall("hmset", (argv[1], _pairs(argv)))


def _hincrby(argv: list[bytes]) -> OpCall:
    return OpCall("hincrby", (argv[1], argv[2], int_arg(argv[3])))


def _hrandfield(argv: list[bytes]) -> OpCall:
    if len(argv) == 2:
        return OpCall("hrandfield", (argv[1], None, False, seed()))
    count = random_count(argv[2])
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withvalues"):
        raise syntax()
    withvalues = len(argv) == 4
    if withvalues and not -INT64_MAX // 2 <= count <= INT64_MAX // 2:
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
        add("hscan", -3, partial(parse_scan, "hscan"))
        add("hrandfield", -2, _hrandfield, _field_value_pairs)
