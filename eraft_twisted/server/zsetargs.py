"""Argument parsing of the sorted-set commands (Redis 7's checks, in its order)."""

from __future__ import annotations

import math

from ..kv.statemachine import parse_int
from ..kv.zsets import CH, GT, INCR, LT, MAX, MIN, NX, SUM, XX
from ..resp.commands import CommandError, wrong_arity
from .args import NOT_INT, int_arg, pop_count, syntax
from .datacmd import OpCall

NOT_FLOAT = "value is not a valid float"
NOT_FLOAT_RANGE = "min or max is not a float"
NOT_LEX_RANGE = "min or max not valid string range item"
_INF_WORDS = (b"inf", b"+inf", b"-inf", b"infinity", b"+infinity", b"-infinity")


def parse_float(text: bytes, strict: bool = True) -> float | None:
    """A double as Redis's strtod-based parsing reads it; None if invalid
    (NaN included; ``strict``: an overflow too, as ZADD refuses it)."""
    if not strict:
        text = text.lstrip(b" \t\n\v\f\r")
    if not text or b"_" in text or text[:1].isspace() or text[-1:].isspace():
        return None
    try:
        value = float(text)
    except ValueError:
        hexed = _hex_float(text)
        if hexed is None:
            return None
        value = hexed
    if math.isnan(value):
        return None
    if strict and math.isinf(value) and text.lower() not in _INF_WORDS:
        return None
    return value


def _hex_float(text: bytes) -> float | None:
    """strtod's hexadecimal form (``0x10``, ``-0x1.8p3``)."""
    body = text.lstrip(b"+-")
    if body[:2].lower() != b"0x" or len(text) - len(body) > 1 or len(body) < 3:
        return None
    try:
        return float.fromhex(text.decode("ascii"))
    except OverflowError:
        return -math.inf if text[:1] == b"-" else math.inf
    except (ValueError, UnicodeDecodeError):
        return None


def float_arg(text: bytes, message: str = NOT_FLOAT) -> float:
    value = parse_float(text)
    if value is None:
        raise CommandError(message)
    return value


def score_bound(text: bytes) -> tuple[float, bool]:
    """``(value, exclusive)`` of a score range's end (``(1.5``, ``-inf``)."""
    exclusive = text[:1] == b"("
    value = parse_float(text[1:] if exclusive else text, strict=False)
    if value is None:
        raise CommandError(NOT_FLOAT_RANGE)
    return value, exclusive


def score_range(lo: bytes, hi: bytes) -> list[object]:
    a, b = score_bound(lo), score_bound(hi)
    return [a[0], a[1], b[0], b[1]]


def lex_bound(text: bytes) -> list[object]:
    """``[inf, member, inclusive]`` of a lex range's end."""
    if text == b"-":
        return [-1, b"", False]
    if text == b"+":
        return [1, b"", False]
    if text[:1] in (b"[", b"("):
        return [0, text[1:], text[:1] == b"["]
    raise CommandError(NOT_LEX_RANGE)


def lex_range(lo: bytes, hi: bytes) -> list[object]:
    return lex_bound(lo) + lex_bound(hi)


def parse_zadd(argv: list[bytes]) -> OpCall:
    flags = 0
    names = {b"nx": NX, b"xx": XX, b"gt": GT, b"lt": LT, b"ch": CH, b"incr": INCR}
    i = 2
    while i < len(argv) and argv[i].lower() in names:
        flags |= names[argv[i].lower()]
        i += 1
    rest = argv[i:]
    if not rest or len(rest) % 2:
        raise syntax()
    if flags & NX and flags & XX:
        raise CommandError("XX and NX options at the same time are not compatible")
    if (flags & GT and flags & NX) or (flags & LT and flags & NX) or (flags & GT and flags & LT):
        raise CommandError("GT, LT, and/or NX options at the same time are not compatible")
    if flags & INCR and len(rest) > 2:
        raise CommandError("INCR option supports a single increment-element pair")
    pairs: list[object] = []
    for j in range(0, len(rest), 2):
        pairs += [float_arg(rest[j]), rest[j + 1]]
    return OpCall("zadd", (argv[1], flags, pairs))


def parse_zincrby(argv: list[bytes]) -> OpCall:
    return OpCall("zadd", (argv[1], INCR, [float_arg(argv[2]), argv[3]]))


def parse_range(
    argv: list[bytes], how: bytes | None, rev: bool | None, store: bool = False
) -> OpCall:
    """ZRANGE (``how``/``rev`` None: from options), its older forms and
    ZRANGESTORE (``store``: ``argv[1:3]`` are dst and src)."""
    base = 2 if store else 1
    key, lo_arg, hi_arg = argv[base], argv[base + 1], argv[base + 2]
    withscores = False
    limit: tuple[int, int] | None = None
    i = base + 3
    while i < len(argv):
        opt = argv[i].lower()
        left = len(argv) - i - 1
        if opt == b"withscores" and not store:
            withscores = True
        elif opt == b"limit" and left >= 2:
            limit = (int_arg(argv[i + 1]), int_arg(argv[i + 2]))
            i += 2
        elif rev is None and opt == b"rev":
            rev = True
        elif how is None and opt == b"byscore":
            how = b"score"
        elif how is None and opt == b"bylex":
            how = b"lex"
        else:
            raise syntax()
        i += 1
    how = how or b"rank"
    rev = bool(rev)
    if limit is not None and how == b"rank":
        raise syntax(", LIMIT is only supported in combination with either BYSCORE or BYLEX")
    if withscores and how == b"lex":
        raise syntax(", WITHSCORES not supported in combination with BYLEX")
    if rev and how != b"rank":
        lo_arg, hi_arg = hi_arg, lo_arg
    lo: object
    hi: object = None
    if how == b"rank":
        lo, hi = int_arg(lo_arg), int_arg(hi_arg)
    elif how == b"score":
        lo = score_range(lo_arg, hi_arg)
    else:
        lo = lex_range(lo_arg, hi_arg)
    offset, count = limit if limit is not None else (0, -1)
    if store:
        return OpCall("zrangestore", ([argv[1], key], how, lo, hi, rev, offset, count))
    return OpCall("zrange", (key, how, lo, hi, rev, offset, count, withscores))


def parse_pop(argv: list[bytes]) -> OpCall:
    highest = argv[0].lower() == b"zpopmax"
    return OpCall("zpop", (argv[1], pop_count(argv), highest))


def parse_store(argv: list[bytes]) -> OpCall:
    name = argv[0].decode("latin-1").lower()
    n = parse_int(argv[2])
    if n is None or not -(2**31) <= n < 2**31:
        raise CommandError(NOT_INT)
    if n < 1:
        raise CommandError(f"at least 1 input key is needed for '{name}' command")
    if n > len(argv) - 3:
        raise syntax()
    keys = argv[3 : 3 + n]
    try:
        weights, aggregate = _store_options(argv[3 + n :], n)
        error = b""
    except CommandError as e:
        # Redis reports a bad option only after it checked the keys' types.
        weights, aggregate, error = [1.0] * n, SUM, e.message.encode()
    return OpCall("zstore", ([argv[1], *keys], name == "zinterstore", weights, aggregate, error))


def _store_options(argv: list[bytes], n: int) -> tuple[list[float], int]:
    weights = [1.0] * n
    aggregate = SUM
    i = 0
    while i < len(argv):
        opt = argv[i].lower()
        left = len(argv) - i - 1
        if opt == b"weights" and left >= n:
            weights = [float_arg(w, "weight value is not a float") for w in argv[i + 1 : i + 1 + n]]
            i += n
        elif opt == b"aggregate" and left >= 1:
            how = argv[i + 1].lower()
            aggregates = {b"sum": SUM, b"min": MIN, b"max": MAX}
            if how not in aggregates:
                raise syntax()
            aggregate = aggregates[how]
            i += 1
        else:
            raise syntax()
        i += 1
    return weights, aggregate


def parse_scan(argv: list[bytes]) -> OpCall:
    # strtoull's reading: a sign, and a negative one wraps around.
    digits = argv[2][1:] if argv[2][:1] in (b"+", b"-") else argv[2]
    if not digits.isdigit() or int(digits) >= 2**64:
        raise CommandError("invalid cursor")
    cursor = int(argv[2]) % 2**64
    return OpCall("zscan", (argv[1], cursor, argv[3:]))


def check_arity(argv: list[bytes], n: int) -> None:
    if len(argv) != n:
        raise wrong_arity(argv[0].decode("latin-1").lower())
