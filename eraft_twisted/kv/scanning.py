"""What HSCAN, SSCAN and ZSCAN share with Redis: glob patterns
(``stringmatchlen``), the COUNT and MATCH options, and cursors that resume
a scan at a sub key."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .collection import refuse
from .numbers import parse_ll

ULONG_MAX = (1 << 64) - 1

# -- glob patterns -----------------------------------------------------------
_Token = tuple[int, bool, list[tuple[int, int]]]
_LIT, _ANY, _STAR, _SET = range(4)


def _tokens(p: bytes) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == 0x2A:  # *
            out.append((_STAR, False, []))
            i += 1
        elif c == 0x3F:  # ?
            out.append((_ANY, False, []))
            i += 1
        elif c == 0x5B:  # [
            i += 1
            neg = i < n and p[i] == 0x5E
            i += neg
            items: list[tuple[int, int]] = []
            while i < n:
                if p[i] == 0x5C and n - i >= 2:
                    items.append((p[i + 1], p[i + 1]))
                    i += 2
                elif p[i] == 0x5D:
                    i += 1
                    break
                elif n - i >= 3 and p[i + 1] == 0x2D:
                    lo, hi = sorted((p[i], p[i + 2]))
                    items.append((lo, hi))
                    i += 3
                else:
                    items.append((p[i], p[i]))
                    i += 1
            out.append((_SET, neg, items))
        else:
            if c == 0x5C and n - i >= 2:
                i += 1
                c = p[i]
            out.append((_LIT, False, [(p[i], p[i])]))
            i += 1
    return out


def _one(tok: _Token, c: int) -> bool:
    kind, neg, items = tok
    if kind == _ANY:
        return True
    hit = any(lo <= c <= hi for lo, hi in items)
    return hit != neg


class Glob:
    """A Redis glob pattern (``*``, ``?``, ``[...]``, ``\\``), case-sensitive."""

    def __init__(self, pattern: bytes) -> None:
        self.tokens = _tokens(pattern)
        self.everything = all(t[0] == _STAR for t in self.tokens) and bool(self.tokens)

    def match(self, s: bytes) -> bool:
        if self.everything:
            return True
        # reach[j]: the pattern so far can consume s[:j]
        reach = [True] + [False] * len(s)
        for tok in self.tokens:
            if tok[0] == _STAR:
                seen = False
                for j in range(len(reach)):
                    seen = seen or reach[j]
                    reach[j] = seen
            else:
                reach = [False] + [reach[j] and _one(tok, s[j]) for j in range(len(s))]
            if not any(reach):
                return False
        return reach[-1]


def glob_filter(pattern: bytes | None) -> Glob | None:
    """The :class:`Glob` for ``pattern``; None if it matches everything."""
    return None if pattern is None or pattern == b"*" else Glob(pattern)


def scan_options(options: list[bytes]) -> tuple[int, Glob | None]:
    """COUNT (default 10) and MATCH of ``options``, refused as Redis does
    (only once the key proved to be of the command's type)."""
    count, glob = 10, None
    for i in range(0, len(options), 2):
        name = options[i].lower()
        if name == b"count" and i + 1 < len(options):
            value = parse_ll(options[i + 1])
            if value is None:
                raise refuse("value is not an integer or out of range")
            if value < 1:
                raise refuse("syntax error")
            count = value
        elif name == b"match" and i + 1 < len(options):
            glob = glob_filter(options[i + 1])
        else:
            raise refuse("syntax error")
    return count, glob


# -- scan cursors --------------------------------------------------------------
CURSOR_BYTES = 256
"""A cursor keeps at most this much of the field it resumes at."""
_CURSOR_DIGITS = 1000
_CURSOR = re.compile(rb"([+-]?)([0-9]+)\Z")


def parse_cursor(raw: bytes) -> bytes | None:
    """Where a scan resumes (the first field to visit; b"" from the start)
    for cursor ``raw``, None if it is no cursor. Cursors are
    ``0x01 field`` read as a big-endian integer (so they can exceed 64 bits);
    like ``strtoul``, an empty cursor is 0 and ``-n`` wraps around."""
    if not raw:
        return b""
    m = _CURSOR.match(raw)
    if not m:
        return None
    if len(m.group(2).lstrip(b"0")) > _CURSOR_DIGITS:
        return None
    value = int(m.group(2))
    if m.group(1) == b"-":
        if value > ULONG_MAX:
            return None
        value = (-value) & ULONG_MAX
    if value == 0:
        return b""
    data = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return data[1:] if data[0] == 1 else data


def make_cursor(field: bytes) -> bytes:
    """The cursor that resumes a scan at ``field`` (at most
    :data:`CURSOR_BYTES` of it)."""
    return str(int.from_bytes(b"\x01" + field[:CURSOR_BYTES], "big")).encode()


def scan_page(
    rows: Iterable[tuple[bytes, bytes]], start: bytes, count: int, glob: Glob | None
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(next cursor, the rows ``glob`` matches) of up to ``count`` of
    ``rows`` (those from ``start`` on); cursor ``0`` when none are left."""
    found: list[tuple[bytes, bytes]] = []
    for n, (sub, value) in enumerate(rows):
        # a cursor keeps a prefix of the sub key: go on while it would not move
        if n >= count and sub[:CURSOR_BYTES] != start:
            return make_cursor(sub), found
        if glob is None or glob.match(sub):
            found.append((sub, value))
    return b"0", found
