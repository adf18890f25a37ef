"""Value rules the hash commands share with Redis: strict integers
(``string2ll``), x87 ``long double`` arithmetic and formatting (what
HINCRBYFLOAT computes), glob patterns (``stringmatchlen``) and scan
cursors."""

from __future__ import annotations

import re
from fractions import Fraction

LLONG_MIN, LLONG_MAX = -(1 << 63), (1 << 63) - 1
ULONG_MAX = (1 << 64) - 1

_INT = re.compile(rb"(0|-?[1-9][0-9]*)\Z")


def parse_ll(raw: bytes) -> int | None:
    """``raw`` as a signed 64-bit integer in canonical form, else None."""
    if not raw or len(raw) > 20 or not _INT.match(raw):
        return None
    value = int(raw)
    return value if LLONG_MIN <= value <= LLONG_MAX else None


# -- long double (x87: 64-bit significand, 15-bit exponent) ------------------
_MANT = 64
_EMIN = -16382
_LIMIT = 1 << 16384
_MAX_CHARS = 5 * 1024
_DEC = re.compile(rb"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?\Z")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?\Z")
_INF = re.compile(rb"([+-]?)(?:inf|infinity)\Z", re.IGNORECASE)

LongDouble = Fraction | float
"""A finite long double (an exact Fraction) or an infinity (a float)."""


def round_ld(x: Fraction) -> LongDouble:
    """``x`` rounded to the nearest long double (ties to even)."""
    if x == 0:
        return Fraction(0)
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    quantum = Fraction(2) ** (max(e, _EMIN) - (_MANT - 1))
    r = round(a / quantum) * quantum
    if r >= _LIMIT:
        return float("inf") if x > 0 else float("-inf")
    return r if x > 0 else -r


_CHUNK = 1000


def _to_int(digits: bytes) -> int:
    # chunked: Python refuses int(str) beyond 4300 digits
    n = 0
    for i in range(0, len(digits), _CHUNK):
        part = digits[i : i + _CHUNK]
        n = n * 10 ** len(part) + int(part)
    return n


def _to_str(n: int) -> str:
    parts: list[str] = []
    while n >= 10**_CHUNK:
        n, low = divmod(n, 10**_CHUNK)
        parts.append(f"{low:0{_CHUNK}d}")
    return str(n) + "".join(reversed(parts))


def _exponent(exp: bytes | None) -> int:
    if not exp:
        return 0
    digits = exp.lstrip(b"+-").lstrip(b"0")
    if len(digits) > 9:
        return -(10**9) if exp[:1] == b"-" else 10**9
    return int(exp)


def _exp10(digits: bytes, frac: bytes, exp: bytes | None) -> Fraction | None:
    if not digits and not frac:
        return None
    e = _exponent(exp)
    if abs(e) > 100000:
        # far outside the range: only its sign and whether digits are all 0 matter
        if not (digits + frac).strip(b"0"):
            return Fraction(0)
        return Fraction(10) ** (6000 if e > 0 else -6000)
    return Fraction(_to_int(digits + frac or b"0")) * Fraction(10) ** (e - len(frac))


def parse_ld(raw: bytes) -> LongDouble | None:
    """``raw`` as ``strtold`` reads it, the way Redis's ``string2ld``
    accepts it (whole string, no leading space, no NaN, no overflow or
    underflow to zero); None if it does not."""
    if not raw or len(raw) >= _MAX_CHARS or raw[:1].isspace():
        return None
    m = _INF.match(raw)
    if m:
        return float("-inf") if m.group(1) == b"-" else float("inf")
    value: Fraction | None
    m = _HEX.match(raw)
    if m:
        sign, digits, frac, exp = m.groups()
        frac = frac or b""
        if not digits and not frac:
            return None
        mant = int(digits + frac, 16)
        e = _exponent(exp) - 4 * len(frac)
        if abs(e) > 100000:
            e = 20000 if e > 0 else -20000
        value = Fraction(mant) * Fraction(2) ** e
    else:
        m = _DEC.match(raw)
        if not m:
            return None
        sign, digits, frac, exp = m.groups()
        value = _exp10(digits, frac or b"", exp)
        if value is None:
            return None
    ld = round_ld(value)
    if isinstance(ld, float) or (ld == 0 and value != 0):
        return None
    return -ld if sign == b"-" else ld


def format_ld(value: Fraction) -> bytes:
    """``%.17Lf`` without trailing zeros (Redis's ``LD_STR_HUMAN``)."""
    n = round(value * 10**17)
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), 10**17)
    text = f"{sign}{_to_str(whole)}.{frac:017d}".rstrip("0").rstrip(".")
    return b"0" if text == "-0" else text.encode()


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
