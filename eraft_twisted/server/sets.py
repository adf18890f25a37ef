"""Set commands (SADD, SMEMBERS, SPOP, SINTER, SSCAN ...), declared as
parse -> operation -> reply (see :mod:`.datacmd`)."""

from __future__ import annotations

from functools import partial

from ..kv.statemachine import parse_int
from ..resp.commands import CommandError, CommandTable
from .args import parse_scan, pop_count, random_count, syntax
from .datacmd import DataCommands, OpCall, as_set, numkeys_at, seed


def _spop(argv: list[bytes]) -> OpCall:
    return OpCall("spop", (argv[1], pop_count(argv), seed()))


def _srandmember(argv: list[bytes]) -> OpCall:
    if len(argv) > 3:
        raise syntax()
    count = random_count(argv[2]) if len(argv) == 3 else None
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
            raise syntax()
    return OpCall("sintercard", (argv[2 : 2 + numkeys], limit))


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
        add("sscan", -3, partial(parse_scan, "sscan"))
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
