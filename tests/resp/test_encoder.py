"""Tests for RESP2/RESP3 reply encoding."""

from __future__ import annotations

import enum
from collections import OrderedDict
from typing import Any

import hiredis
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.resp.encoder import (
    OK,
    PONG,
    ErrorReply,
    NullArray,
    SimpleString,
    Verbatim,
    encode,
)


class Color(enum.IntEnum):
    RED = 7


CASES: list[tuple[Any, bytes, bytes | None]] = [
    # value, RESP2, RESP3
    (OK, b"+OK\r\n", b"+OK\r\n"),
    (PONG, b"+PONG\r\n", b"+PONG\r\n"),
    (SimpleString("QUEUED"), b"+QUEUED\r\n", b"+QUEUED\r\n"),
    (
        ErrorReply("ERR wrong number of arguments for 'get' command"),
        b"-ERR wrong number of arguments for 'get' command\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n",
    ),
    (ErrorReply("MOVED 3999 127.0.0.1:6381"), b"-MOVED 3999 127.0.0.1:6381\r\n", None),
    (0, b":0\r\n", b":0\r\n"),
    (-42, b":-42\r\n", b":-42\r\n"),
    (2**63 - 1, b":9223372036854775807\r\n", b":9223372036854775807\r\n"),
    (2**64, b"$20\r\n18446744073709551616\r\n", b"(18446744073709551616\r\n"),
    (-(2**63) - 1, b"$20\r\n-9223372036854775809\r\n", b"(-9223372036854775809\r\n"),
    (Color.RED, b":7\r\n", b":7\r\n"),
    (True, b":1\r\n", b"#t\r\n"),
    (False, b":0\r\n", b"#f\r\n"),
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (b"a\r\nb", b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n"),
    (bytearray(b"xy"), b"$2\r\nxy\r\n", b"$2\r\nxy\r\n"),
    (memoryview(b"xyz"), b"$3\r\nxyz\r\n", b"$3\r\nxyz\r\n"),
    ("héllo", b"$6\r\nh\xc3\xa9llo\r\n", b"$6\r\nh\xc3\xa9llo\r\n"),
    (None, b"$-1\r\n", b"_\r\n"),
    (NullArray, b"*-1\r\n", b"_\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    ([b"a", 1, None], b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n", b"*3\r\n$1\r\na\r\n:1\r\n_\r\n"),
    ((b"a", [b"b", []]), b"*2\r\n$1\r\na\r\n*2\r\n$1\r\nb\r\n*0\r\n", None),
    ({b"k": 1}, b"*2\r\n$1\r\nk\r\n:1\r\n", b"%1\r\n$1\r\nk\r\n:1\r\n"),
    (
        OrderedDict([("a", 1), ("b", 2)]),
        b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n",
        b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:2\r\n",
    ),
    ({}, b"*0\r\n", b"%0\r\n"),
    ({b"x"}, b"*1\r\n$1\r\nx\r\n", b"~1\r\n$1\r\nx\r\n"),
    (frozenset(), b"*0\r\n", b"~0\r\n"),
    (1.5, b"$3\r\n1.5\r\n", b",1.5\r\n"),
    (3.0, b"$1\r\n3\r\n", b",3\r\n"),
    (-0.25, b"$5\r\n-0.25\r\n", b",-0.25\r\n"),
    (1e20, b"$5\r\n1e+20\r\n", b",1e+20\r\n"),
    (float("inf"), b"$3\r\ninf\r\n", b",inf\r\n"),
    (float("-inf"), b"$4\r\n-inf\r\n", b",-inf\r\n"),
    (float("nan"), b"$3\r\nnan\r\n", b",nan\r\n"),
    (Verbatim("a\nb"), b"$3\r\na\nb\r\n", b"=7\r\ntxt:a\nb\r\n"),
    (Verbatim(b"# x", fmt="mkd"), b"$3\r\n# x\r\n", b"=7\r\nmkd:# x\r\n"),
]


class EncoderTests(SynchronousTestCase):
    def test_table(self) -> None:
        for value, resp2, resp3 in CASES:
            self.assertEqual(encode(value, 2), resp2, repr(value))
            self.assertEqual(encode(value, 3), resp3 if resp3 is not None else resp2, repr(value))

    def test_default_protocol_is_2(self) -> None:
        self.assertEqual(encode(None), b"$-1\r\n")

    def test_line_replies_never_break_framing(self) -> None:
        self.assertEqual(encode(ErrorReply("ERR bad\r\nthing")), b"-ERR bad  thing\r\n")
        self.assertEqual(encode(SimpleString("a\nb")), b"+a b\r\n")

    def test_client_bytes_survive_in_errors(self) -> None:
        raw = b"unknown '\xff\xfe'".decode("utf-8", "surrogateescape")
        self.assertEqual(encode(ErrorReply("ERR " + raw)), b"-ERR unknown '\xff\xfe'\r\n")

    def test_null_array_is_a_singleton(self) -> None:
        self.assertIs(type(NullArray)(), NullArray)
        self.assertEqual(repr(NullArray), "NullArray")

    def test_unknown_type(self) -> None:
        self.assertRaises(TypeError, encode, object())
        self.assertRaises(TypeError, encode, [1, object()])

    def test_verbatim_format_must_be_three_chars(self) -> None:
        self.assertRaises(ValueError, Verbatim, "x", fmt="text")
        self.assertEqual(Verbatim("x"), Verbatim("x", "txt"))
        self.assertNotEqual(Verbatim("x"), Verbatim("x", "mkd"))


def _decoded(value: Any) -> Any:
    """What hiredis should read back for ``value``."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (list, tuple)):
        return [_decoded(v) for v in value]
    if isinstance(value, dict):
        return {_decoded(k): _decoded(v) for k, v in value.items()}
    return value


scalars = st.one_of(
    st.binary(max_size=20),
    st.text(max_size=10),
    st.integers(-(2**63), 2**63 - 1),
    st.none(),
)
replies = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.binary(max_size=5), children, max_size=3),
    ),
    max_leaves=12,
)


class EncoderPropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(value=replies)
    def test_hiredis_reads_back_resp3(self, value: Any) -> None:
        reader = hiredis.Reader()
        reader.feed(encode(value, 3) + encode(b"end", 3))
        self.assertEqual(reader.gets(), _decoded(value))
        self.assertEqual(reader.gets(), b"end")

    @settings(max_examples=150, deadline=None)
    @given(value=replies)
    def test_hiredis_reads_back_resp2(self, value: Any) -> None:
        reader = hiredis.Reader()
        reader.feed(encode(value, 2) + encode(b"end", 2))
        got = reader.gets()
        self.assertEqual(got, _flatten_maps(_decoded(value)))
        self.assertEqual(reader.gets(), b"end")


def _flatten_maps(value: Any) -> Any:
    if isinstance(value, list):
        return [_flatten_maps(v) for v in value]
    if isinstance(value, dict):
        flat = []
        for k, v in value.items():
            flat += [_flatten_maps(k), _flatten_maps(v)]
        return flat
    return value
