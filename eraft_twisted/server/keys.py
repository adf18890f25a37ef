"""Generic key commands (RENAME, COPY, TOUCH, RANDOMKEY) and the remaining
string ones (SETEX, GETEX, INCRBYFLOAT, ...), declared as parse ->
operation -> reply (see :mod:`.datacmd`)."""

from __future__ import annotations

from functools import partial

from ..kv.keys import INT64_MAX, expire_error
from ..resp.commands import CommandError, CommandTable, wrong_arity
from .args import int_arg, syntax
from .datacmd import DataCommands, OpCall, seed


def _rename(nx: bool, argv: list[bytes]) -> OpCall:
    return OpCall("rename", (argv[1], argv[2], nx))


def _copy(argv: list[bytes]) -> OpCall:
    """``COPY source destination [DB n] [REPLACE]``: only database 0 exists."""
    replace = False
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        if opt == b"replace":
            replace = True
        elif opt == b"db" and i + 1 < len(argv):
            if int_arg(argv[i + 1]) != 0:
                raise CommandError("DB index is out of range")
            i += 1
        else:
            raise syntax()
        i += 1
    if argv[1] == argv[2]:
        raise CommandError("source and destination objects are the same")
    return OpCall("copy", (argv[1], argv[2], replace))


def _msetnx(argv: list[bytes]) -> OpCall:
    if len(argv) % 2 == 0:
        raise wrong_arity("msetnx")
    return OpCall("msetnx", (argv[1:],))


def _getex(argv: list[bytes]) -> OpCall:
    """``GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]``: as Redis,
    the same option may repeat (the last wins), two different ones may not;
    the time is checked by the operation, after the key's type."""
    mode, arg = "", None
    i = 2
    while i < len(argv):
        opt = argv[i].upper().decode("latin-1")
        has_next = i + 1 < len(argv)
        if opt in ("EX", "PX", "EXAT", "PXAT") and mode in ("", opt) and has_next:
            mode, arg = opt, argv[i + 1]
            i += 1
        elif opt == "PERSIST" and mode in ("", opt):
            mode = opt
        else:
            raise syntax()
        i += 1
    return OpCall("getex", (argv[1], mode, arg))


def _setrange(argv: list[bytes]) -> OpCall:
    offset = int_arg(argv[2])
    if offset < 0:
        raise CommandError("offset is out of range")
    return OpCall("setrange", (argv[1], offset, argv[3]))


def _getrange(argv: list[bytes]) -> OpCall:
    return OpCall("getrange", (argv[1], int_arg(argv[2]), int_arg(argv[3])))


class KeyCommands:
    """Registers the generic commands on a :class:`DataCommands`."""

    def __init__(self, data: DataCommands) -> None:
        self.data = data

    def _setex(self, unit: int, argv: list[bytes]) -> OpCall:
        """``SETEX key seconds value`` / ``PSETEX key ms value``."""
        n = int_arg(argv[2])
        name = argv[0].decode("latin-1").lower()
        if n <= 0 or n > INT64_MAX // unit or n * unit > INT64_MAX - self.data.now_ms():
            raise CommandError(expire_error(name))
        return OpCall("setex", (argv[1], argv[3], n * unit))

    def register(self, table: CommandTable) -> None:
        add = partial(self.data.add, table)
        add("rename", 3, partial(_rename, False), last_key=2)
        add("renamenx", 3, partial(_rename, True), last_key=2)
        add("copy", -3, _copy, last_key=2, since="6.2.0")
        add("touch", -2, lambda a: OpCall("touch", (a[1:],)), last_key=-1)
        add(
            "randomkey",
            1,
            lambda a: OpCall("randomkey", (seed(),)),
            first_key=0,
            last_key=0,
        )
        strings = partial(add, group="string")
        strings("setex", 4, partial(self._setex, 1000))
        strings("psetex", 4, partial(self._setex, 1))
        strings("getex", -2, _getex, since="6.2.0")
        strings("incrbyfloat", 3, lambda a: OpCall("incrbyfloat", (a[1], a[2])))
        strings("getrange", 4, _getrange)
        strings("setrange", 4, _setrange)
        strings("msetnx", -3, _msetnx, last_key=-1, step=2)
