"""Redis's ``long double`` arithmetic on x86-64 (INCRBYFLOAT, HINCRBYFLOAT):
64-bit significand, 15-bit exponent, parsed like ``string2ld`` and printed
like ``%.17Lf`` without trailing zeroes. Exact rationals rounded to that
format, so every replica computes the same digits as Redis."""

from __future__ import annotations

import re
from fractions import Fraction

MAX_CHARS = 5 * 1024
"""Redis refuses longer numbers (``MAX_LONG_DOUBLE_CHARS``)."""

_MANT_BITS = 64
_MIN_EXP = -16445
"""The exponent of the smallest subnormal long double."""
_LIMIT = 1 << 16384
"""Magnitudes this large or more overflow to infinity."""

_DEC = re.compile(rb"([+-]?)(\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?\Z")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP]([+-]?\d+))?\Z")
_INF = re.compile(rb"([+-]?)(?:inf|infinity)\Z", re.IGNORECASE)
_CHUNK = 4000
"""Digits converted at a time (Python limits int <-> str conversions)."""

LongDouble = Fraction | float
"""A finite long double (an exact Fraction) or an infinity (a float)."""


def _int(digits: bytes, base: int = 10) -> int:
    n = 0
    for i in range(0, len(digits), _CHUNK):
        part = digits[i : i + _CHUNK]
        n = n * base ** len(part) + int(part, base)
    return n


def _digits(n: int) -> str:
    if n < 10**_CHUNK:
        return str(n)
    high, low = divmod(n, 10**_CHUNK)
    return _digits(high) + str(low).rjust(_CHUNK, "0")


def _exponent(exp: bytes | None, scale: int) -> int | None:
    """The written exponent minus ``scale``; None if it is absurdly long."""
    if exp is None:
        return -scale
    if len(exp.lstrip(b"+-").lstrip(b"0")) > 11:
        return None
    return int(exp) - scale


def _round_half_even(num: int, den: int) -> int:
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q & 1):
        q += 1
    return q


def round_ld(v: Fraction) -> LongDouble:
    """``v`` rounded to the nearest long double (ties to even); an
    infinity if it overflows."""
    if v == 0:
        return v
    a = abs(v)
    n, d = a.numerator, a.denominator
    e = n.bit_length() - d.bit_length()
    if (n << max(0, -e)) < (d << max(0, e)):
        e -= 1
    shift = max(e - (_MANT_BITS - 1), _MIN_EXP)
    num, den = (n, d << shift) if shift >= 0 else (n << -shift, d)
    out = Fraction(_round_half_even(num, den)) * (Fraction(2) ** shift)
    if out >= _LIMIT:
        return float("inf") if v > 0 else float("-inf")
    return out if v > 0 else -out


def parse_ld(raw: bytes) -> LongDouble | None:
    """The long double ``raw`` spells, as Redis's ``string2ld`` reads it
    (the whole string, no NaN, no overflow or underflow to zero); None if
    Redis refuses it."""
    if not raw or len(raw) >= MAX_CHARS:
        return None
    m = _INF.match(raw)
    if m:
        return float("-inf") if m.group(1) == b"-" else float("inf")
    m = _DEC.match(raw)
    if m is not None:
        sign, body, exp = m.groups()
        whole, _, frac = body.partition(b".")
        mant = _int((whole + frac) or b"0")
        power = _exponent(exp, len(frac))
        base = 10
        magnitude = len(_digits(mant))
        bounds = (4934, -4952)
    else:
        m = _HEX.match(raw)
        if m is None:
            return None
        sign, body, exp = m.groups()
        whole, _, frac = body.partition(b".")
        mant = _int((whole + frac) or b"0", 16)
        power = _exponent(exp, 4 * len(frac))
        base = 2
        magnitude = mant.bit_length()
        bounds = (16386, -16447)
    if mant == 0:
        return Fraction(0)
    if power is None:
        return None  # an exponent this long over- or underflows
    if power + magnitude > bounds[0] or power + magnitude < bounds[1]:
        return None  # out of range: strtold's ERANGE, to infinity or zero
    value = round_ld(Fraction(mant) * Fraction(base) ** power)
    if isinstance(value, float) or value == 0:
        return None
    return -value if sign == b"-" else value


def add_ld(a: LongDouble, b: LongDouble) -> Fraction | None:
    """``a + b`` rounded to a long double; None if it is infinite or NaN."""
    if isinstance(a, float) or isinstance(b, float):
        return None
    total = round_ld(a + b)
    return None if isinstance(total, float) else total


def format_ld(v: Fraction) -> bytes:
    """``%.17Lf`` without trailing zeroes (and ``-0`` as ``0``)."""
    scaled = v * 10**17
    q = _round_half_even(scaled.numerator, scaled.denominator)
    sign = "-" if q < 0 else ""
    whole, frac = divmod(abs(q), 10**17)
    text = f"{sign}{_digits(whole)}.{frac:017d}".rstrip("0").rstrip(".")
    return b"0" if text == "-0" else text.encode()
