"""Argument checks several data commands share, in Redis's wording."""

from __future__ import annotations

from ..kv.scanning import parse_cursor
from ..kv.statemachine import INT64_MAX, parse_int
from ..resp.commands import CommandError
from .datacmd import OpCall

NOT_INT = "value is not an integer or out of range"


def syntax(detail: str = "") -> CommandError:
    return CommandError("syntax error" + detail)


def int_arg(text: bytes) -> int:
    """``text`` as a strict 64-bit integer, else Redis's error."""
    n = parse_int(text)
    if n is None:
        raise CommandError(NOT_INT)
    return n


def pop_count(argv: list[bytes]) -> int | None:
    """The optional COUNT of ``SPOP/ZPOPMIN/ZPOPMAX key [count]``."""
    if len(argv) > 3:
        raise syntax()
    if len(argv) < 3:
        return None
    n = parse_int(argv[2])
    if n is None or n < 0:
        raise CommandError("value is out of range, must be positive")
    return n


def random_count(text: bytes) -> int:
    """The count of HRANDFIELD or SRANDMEMBER (its negation must fit too)."""
    n = int_arg(text)
    if n < -INT64_MAX:
        raise CommandError(
            f"value is out of range, value must between {-INT64_MAX} and {INT64_MAX}"
        )
    return n


def parse_scan(name: str, argv: list[bytes]) -> OpCall:
    """HSCAN's or SSCAN's op: the cursor is checked first, the options
    only once the key's type is known."""
    start = parse_cursor(argv[2])
    if start is None:
        raise CommandError("invalid cursor")
    return OpCall(name, (argv[1], start, argv[3:]))
