"""Hash commands (HSET, HGET, ...), declared as parse -> operation -> reply."""

from __future__ import annotations

from functools import partial

from ..resp.commands import CommandTable, wrong_arity
from .datacmd import DataCommands, OpCall, as_map


def _hset(argv: list[bytes]) -> OpCall:
    if len(argv) % 2:
        raise wrong_arity(argv[0].decode("latin-1").lower())
    return OpCall("hset", (argv[1], argv[2:]))


class HashCommands:
    """Registers the hash commands on a :class:`DataCommands`."""

    def __init__(self, data: DataCommands) -> None:
        self.data = data

    def register(self, table: CommandTable) -> None:
        add = partial(self.data.add, table, group="hash")
        add("hset", -4, _hset)
        add("hget", 3, lambda a: OpCall("hget", (a[1], a[2])))
        add("hdel", -3, lambda a: OpCall("hdel", (a[1], a[2:])))
        add("hlen", 2, lambda a: OpCall("hlen", (a[1],)))
        add("hgetall", 2, lambda a: OpCall("hgetall", (a[1],)), as_map)
