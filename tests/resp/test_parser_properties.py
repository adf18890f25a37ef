"""Property tests for the RESP request parser (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.resp import parser as parser_module
from eraft_twisted.resp.parser import ProtocolError, RespParser

from .helpers import bytewise, multibulk, parse_all, parse_chunks

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

argv_st = st.lists(st.binary(max_size=24), min_size=1, max_size=5)
argvs_st = st.lists(argv_st, min_size=1, max_size=6)

# Fragments that make near-miss RESP more likely than uniform random bytes do.
TOKENS = [
    b"*",
    b"$",
    b"\r\n",
    b"\r",
    b"\n",
    b"0",
    b"1",
    b"3",
    b"-1",
    b"12",
    b"999999999999",
    b"PING",
    b"GET k",
    b'"',
    b"'",
    b"\\",
    b"\\x4",
    b" ",
    b"\t",
    b"\x00",
    b"+OK",
    b":",
    b"~",
    b"|1234",
]
fragment_st = st.one_of(
    st.sampled_from(TOKENS),
    st.binary(max_size=6),
    argv_st.map(lambda argv: multibulk(*argv)),
)
junk_st = st.lists(fragment_st, max_size=24).map(b"".join)

SENTINEL = [b"PING", b"sentinel"]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out = []
    prev = 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    out.append(data[prev:])
    return out


def quote(arg: bytes) -> bytes:
    """Quote one argument for an inline request, as redis-cli would print it."""
    out = bytearray(b'"')
    for b in arg:
        if b in b'"\\':
            out += b"\\" + bytes([b])
        elif 0x20 <= b < 0x7F:
            out.append(b)
        else:
            out += b"\\x%02x" % b
    out += b'"'
    return bytes(out)


def outcomes(data: bytes, cuts: list[int], **limits: int) -> set[object]:
    """The (commands, error) outcome of ``data`` under several feeding strategies."""
    results: set[object] = set()
    for use_hiredis in (False, True):
        for chunks in ([data], bytewise(data), split_at(data, cuts)):
            commands, error = parse_chunks(chunks, use_hiredis, **limits)
            results.add((tuple(map(tuple, commands)), error))
    return results


class ParserPropertyTests(SynchronousTestCase):
    def setUp(self) -> None:
        # Let hiredis frame even the short inputs generated here.
        self.patch(parser_module, "_HIREDIS_MIN_RUN", 0)

    @SETTINGS
    @given(argvs=argvs_st, data=st.data())
    def test_valid_stream_round_trips_under_any_split(
        self, argvs: list[list[bytes]], data: st.DataObject
    ) -> None:
        stream = b"".join(multibulk(*argv) for argv in argvs)
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
        for use_hiredis in (False, True):
            got = parse_chunks(split_at(stream, cuts), use_hiredis)
            self.assertEqual(got, (argvs, None))

    @SETTINGS
    @given(argvs=argvs_st)
    def test_inline_quoting_round_trips(self, argvs: list[list[bytes]]) -> None:
        stream = b"".join(b" ".join(quote(a) for a in argv) + b"\r\n" for argv in argvs)
        for use_hiredis in (False, True):
            self.assertEqual(parse_all(stream, use_hiredis), (argvs, None))
            self.assertEqual(parse_chunks(bytewise(stream), use_hiredis), (argvs, None))

    @SETTINGS
    @given(junk=junk_st, cuts=st.lists(st.integers(0, 400), max_size=6))
    def test_any_input_gives_one_outcome(self, junk: bytes, cuts: list[int]) -> None:
        # Only ProtocolError may escape (parse_chunks catches nothing else), and the
        # outcome depends neither on how the bytes were split nor on hiredis.
        self.assertEqual(len(outcomes(junk, cuts)), 1)

    @SETTINGS
    @given(junk=junk_st, cuts=st.lists(st.integers(0, 400), max_size=6))
    def test_any_input_gives_one_outcome_with_small_limits(
        self, junk: bytes, cuts: list[int]
    ) -> None:
        limits = {"max_inline": 40, "max_bulk": 16, "max_multibulk": 4, "max_request": 24}
        self.assertEqual(len(outcomes(junk, cuts, **limits)), 1)

    @SETTINGS
    @given(argv=argv_st, data=st.data())
    def test_mutated_frame_never_misframes_the_next_command(
        self, argv: list[bytes], data: st.DataObject
    ) -> None:
        frame = bytearray(multibulk(*argv))
        mutation = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        i = data.draw(st.integers(0, len(frame) - 1))
        byte = data.draw(st.sampled_from(b"*$\r\n0123456789-x \"'\x00"))
        if mutation == "replace":
            frame[i] = byte
        elif mutation == "insert":
            frame.insert(i, byte)
        elif mutation == "delete":
            del frame[i]
        else:
            del frame[i:]
        mutated = bytes(frame)
        sentinel = multibulk(*SENTINEL)
        for use_hiredis in (False, True):
            parser = RespParser(use_hiredis=use_hiredis)
            parser.feed(mutated)
            alone = _drain(parser)
            clean = alone[1] is None and parser.at_boundary
            both = parse_all(mutated + sentinel, use_hiredis)
            # Whatever the mutated frame became is a prefix of the longer stream's
            # outcome, and an error stays the same error.
            self.assertEqual(both[0][: len(alone[0])], alone[0])
            if alone[1] is not None:
                self.assertEqual(both, alone)
            if clean:
                # The frame parsed to completion: the next command is framed exactly.
                self.assertEqual(both, (alone[0] + [SENTINEL], None))

    @SETTINGS
    @given(argv=argv_st, data=st.data())
    def test_structural_corruption_is_a_protocol_error(
        self, argv: list[bytes], data: st.DataObject
    ) -> None:
        frame = bytearray(multibulk(*argv))
        positions = _structure(argv)
        kind, i = data.draw(st.sampled_from(positions))
        if kind == "dollar":
            frame[i] = data.draw(st.integers(0, 255).filter(lambda b: b != 0x24))
        elif kind == "digit":
            frame[i] = data.draw(st.sampled_from(b"x :+. "))
        else:
            frame[i] = ord("X")
        corrupted = bytes(frame) + multibulk(*SENTINEL)
        for use_hiredis in (False, True):
            commands, error = parse_all(corrupted, use_hiredis)
            self.assertEqual(commands, [])
            self.assertIsNotNone(error)
            assert error is not None
            self.assertTrue(error.startswith("Protocol error: "), error)


def _drain(parser: RespParser) -> tuple[list[list[bytes]], str | None]:
    out = []
    try:
        while (argv := parser.next_command()) is not None:
            out.append(argv)
    except ProtocolError as e:
        return out, e.message
    return out, None


def _structure(argv: list[bytes]) -> list[tuple[str, int]]:
    """Positions in multibulk(*argv) whose corruption must be a protocol error."""
    out: list[tuple[str, int]] = []
    count = b"%d" % len(argv)
    out += [("digit", 1 + j) for j in range(len(count))]
    pos = 1 + len(count)
    out += [("crlf", pos), ("crlf", pos + 1)]
    pos += 2
    for a in argv:
        length = b"%d" % len(a)
        out.append(("dollar", pos))
        out += [("digit", pos + 1 + j) for j in range(len(length))]
        pos += 1 + len(length)
        out += [("crlf", pos), ("crlf", pos + 1)]
        pos += 2 + len(a)
        out += [("crlf", pos), ("crlf", pos + 1)]
        pos += 2
    return out
