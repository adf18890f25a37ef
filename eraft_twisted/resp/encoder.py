"""Reply encoding for RESP2 and RESP3.

Python values map to RESP types as follows (RESP3 / RESP2):

=====================  ==============================  ============================
value                  RESP3                           RESP2
=====================  ==============================  ============================
SimpleString           ``+text``                       same
ErrorReply             ``-CODE message``               same
int                    ``:n`` (``(n`` beyond int64)    ``:n`` (bulk beyond int64)
bool                   ``#t`` / ``#f``                 ``:1`` / ``:0``
bytes, str             ``$len`` bulk string            same
None                   ``_``                           ``$-1`` (null bulk)
NullArray              ``_``                           ``*-1`` (null array)
list, tuple            ``*n`` array                    same
dict                   ``%n`` map                      ``*2n`` flat array
set, frozenset         ``~n`` set                      ``*n`` array
float                  ``,x`` double                   bulk string
Verbatim               ``=len`` ``fmt:text``           bulk string of the text
=====================  ==============================  ============================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, TypeAlias

__all__ = [
    "NULL_ARRAY",
    "OK",
    "PONG",
    "ErrorReply",
    "NullArray",
    "Reply",
    "SimpleString",
    "Verbatim",
    "encode",
]


class SimpleString(str):
    """A status reply, sent as ``+text``. Must not contain CR or LF (they become spaces)."""

    __slots__ = ()


class ErrorReply(str):
    """An error reply: the full text after the ``-``, starting with its code.

    E.g. ``ErrorReply("ERR wrong number of arguments for 'get' command")`` or
    ``ErrorReply("MOVED 3999 127.0.0.1:6381")``.
    """

    __slots__ = ()


class Verbatim:
    """A verbatim string (RESP3 ``=``), e.g. the text of INFO or CLIENT LIST."""

    __slots__ = ("fmt", "text")

    def __init__(self, text: str | bytes, fmt: str = "txt") -> None:
        if len(fmt) != 3:
            raise ValueError("verbatim format must be exactly 3 characters")
        self.text = text
        self.fmt = fmt

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verbatim) and self.text == other.text and self.fmt == other.fmt

    def __hash__(self) -> int:
        return hash((self.text, self.fmt))

    def __repr__(self) -> str:
        return f"Verbatim({self.text!r}, fmt={self.fmt!r})"


class _NullArrayType:
    """Type of the NullArray marker (``*-1`` in RESP2)."""

    __slots__ = ()
    _instance: _NullArrayType | None = None

    def __new__(cls) -> _NullArrayType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NullArray"

    def __reduce__(self) -> str:
        return "NullArray"


NullArray = _NullArrayType()
NULL_ARRAY = NullArray

OK = SimpleString("OK")
PONG = SimpleString("PONG")

Reply: TypeAlias = (
    None
    | bool
    | int
    | float
    | bytes
    | str
    | Verbatim
    | _NullArrayType
    | Sequence["Reply"]
    | Mapping[Any, "Reply"]
    | AbstractSet["Reply"]
)
"""What :func:`encode` accepts (of containers: lists, tuples, dicts, sets).
Map keys are not checked: Mapping's key type is invariant, so ``dict[str, int]``
would not be a Mapping of replies to replies."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_OK_BYTES = b"+OK\r\n"


def _line(text: str) -> bytes:
    if "\r" in text or "\n" in text:
        # Like Redis, never let a status or error line break the framing.
        text = text.replace("\r", " ").replace("\n", " ")
    return text.encode("utf-8", "surrogateescape")


def _format_double(value: float) -> bytes:
    if math.isnan(value):
        return b"nan"
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    text = repr(value)
    if text.endswith(".0"):
        text = text[:-2]
    return text.encode()


def encode(value: Any, proto: int = 2) -> bytes:
    """Encode one reply value for protocol version ``proto`` (2 or 3)."""
    t = type(value)
    if t is bytes:
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if value is OK:
        return _OK_BYTES
    if t is int and _INT64_MIN <= value <= _INT64_MAX:
        return b":%d\r\n" % value
    if value is None:
        return b"_\r\n" if proto == 3 else b"$-1\r\n"
    out: list[bytes] = []
    _encode_into(value, proto == 3, out)
    return b"".join(out)


def _encode_into(value: Any, resp3: bool, out: list[bytes]) -> None:
    t = type(value)
    fn = _ENCODERS.get(t)
    if fn is None:
        fn = _encoder_for_subclass(value)
    fn(value, resp3, out)


def _enc_bytes(value: bytes | bytearray | memoryview, resp3: bool, out: list[bytes]) -> None:
    data = bytes(value)
    out.append(b"$%d\r\n%b\r\n" % (len(data), data))


def _enc_str(value: str, resp3: bool, out: list[bytes]) -> None:
    data = value.encode("utf-8", "surrogateescape")
    out.append(b"$%d\r\n%b\r\n" % (len(data), data))


def _enc_simple(value: str, resp3: bool, out: list[bytes]) -> None:
    out.append(b"+" + _line(value) + b"\r\n")


def _enc_error(value: str, resp3: bool, out: list[bytes]) -> None:
    out.append(b"-" + _line(value) + b"\r\n")


def _enc_int(value: int, resp3: bool, out: list[bytes]) -> None:
    if _INT64_MIN <= value <= _INT64_MAX:
        out.append(b":%d\r\n" % value)
    elif resp3:
        out.append(b"(%d\r\n" % value)
    else:
        digits = b"%d" % value
        out.append(b"$%d\r\n%b\r\n" % (len(digits), digits))


def _enc_bool(value: bool, resp3: bool, out: list[bytes]) -> None:
    if resp3:
        out.append(b"#t\r\n" if value else b"#f\r\n")
    else:
        out.append(b":1\r\n" if value else b":0\r\n")


def _enc_float(value: float, resp3: bool, out: list[bytes]) -> None:
    text = _format_double(value)
    if resp3:
        out.append(b"," + text + b"\r\n")
    else:
        out.append(b"$%d\r\n%b\r\n" % (len(text), text))


def _enc_none(value: None, resp3: bool, out: list[bytes]) -> None:
    out.append(b"_\r\n" if resp3 else b"$-1\r\n")


def _enc_null_array(value: _NullArrayType, resp3: bool, out: list[bytes]) -> None:
    out.append(b"_\r\n" if resp3 else b"*-1\r\n")


def _enc_array(value: Sequence[object], resp3: bool, out: list[bytes]) -> None:
    out.append(b"*%d\r\n" % len(value))
    for item in value:
        if type(item) is bytes:
            out.append(b"$%d\r\n%b\r\n" % (len(item), item))
        else:
            _encode_into(item, resp3, out)


def _enc_map(value: Mapping[object, object], resp3: bool, out: list[bytes]) -> None:
    if resp3:
        out.append(b"%%%d\r\n" % len(value))
    else:
        out.append(b"*%d\r\n" % (2 * len(value)))
    for k, v in value.items():
        _encode_into(k, resp3, out)
        _encode_into(v, resp3, out)


def _enc_set(value: AbstractSet[object], resp3: bool, out: list[bytes]) -> None:
    out.append((b"~%d\r\n" if resp3 else b"*%d\r\n") % len(value))
    for item in value:
        _encode_into(item, resp3, out)


def _enc_verbatim(value: Verbatim, resp3: bool, out: list[bytes]) -> None:
    text = value.text
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
    if resp3:
        out.append(b"=%d\r\n%b:%b\r\n" % (len(data) + 4, value.fmt.encode(), data))
    else:
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))


_Encoder = Callable[[Any, bool, list[bytes]], None]

_ENCODERS: dict[type, _Encoder] = {
    bytes: _enc_bytes,
    bytearray: _enc_bytes,
    memoryview: _enc_bytes,
    str: _enc_str,
    SimpleString: _enc_simple,
    ErrorReply: _enc_error,
    int: _enc_int,
    bool: _enc_bool,
    float: _enc_float,
    type(None): _enc_none,
    _NullArrayType: _enc_null_array,
    list: _enc_array,
    tuple: _enc_array,
    dict: _enc_map,
    set: _enc_set,
    frozenset: _enc_set,
    Verbatim: _enc_verbatim,
}

# Checked in this order, so subclasses of str/int resolve to the right kind.
_SUBCLASS_ORDER: tuple[tuple[type, _Encoder], ...] = (
    (SimpleString, _enc_simple),
    (ErrorReply, _enc_error),
    (bool, _enc_bool),
    (int, _enc_int),
    (float, _enc_float),
    (str, _enc_str),
    (bytes, _enc_bytes),
    (bytearray, _enc_bytes),
    (memoryview, _enc_bytes),
    (dict, _enc_map),
    (list, _enc_array),
    (tuple, _enc_array),
    (set, _enc_set),
    (frozenset, _enc_set),
)


def _encoder_for_subclass(value: object) -> _Encoder:
    for base, fn in _SUBCLASS_ORDER:
        if isinstance(value, base):
            return fn
    raise TypeError(f"cannot encode {type(value).__name__} as a RESP reply")
