"""Unit tests for the incremental RESP request parser, in pure-Python and hiredis modes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.resp import parser as parser_module
from eraft_twisted.resp.parser import (
    MAX_INLINE,
    ProtocolError,
    RespParser,
    parse_int64,
    split_inline,
)

from .helpers import bytewise, multibulk, parse_all, parse_chunks

PIPELINE = (
    multibulk(b"SET", b"key", b"va\r\nlue")
    + b"PING\r\n"
    + multibulk(b"GET", b"key")
    + b"\r\n"
    + b"*0\r\n"
    + b"*-1\r\n"
    + b"set \"a b\" 'c d'\n"
    + multibulk(b"MSET", b"", b"\x00\xff", b"*1\r\n$1\r\n")
    + b"  echo   hi  \r\n"
)
PIPELINE_ARGV = [
    [b"SET", b"key", b"va\r\nlue"],
    [b"PING"],
    [b"GET", b"key"],
    [b"set", b"a b", b"c d"],
    [b"MSET", b"", b"\x00\xff", b"*1\r\n$1\r\n"],
    [b"echo", b"hi"],
]


if TYPE_CHECKING:
    _Base = SynchronousTestCase
else:
    _Base = object


class _ParserTests(_Base):
    """Cases run against both parser modes (``use_hiredis`` set by subclasses)."""

    use_hiredis: bool

    def parse(self, data: bytes, **limits: int) -> tuple[list[list[bytes]], str | None]:
        return parse_all(data, self.use_hiredis, **limits)

    def assert_error(self, data: bytes, message: str, **limits: int) -> None:
        """``data`` fails with ``message`` whether fed whole or byte by byte."""
        self.assertEqual(self.parse(data, **limits)[1], message)
        self.assertEqual(parse_chunks(bytewise(data), self.use_hiredis, **limits)[1], message)

    def test_single_multibulk(self) -> None:
        self.assertEqual(self.parse(multibulk(b"GET", b"k")), ([[b"GET", b"k"]], None))

    def test_pipeline(self) -> None:
        self.assertEqual(self.parse(PIPELINE), (PIPELINE_ARGV, None))

    def test_split_at_every_offset(self) -> None:
        for i in range(len(PIPELINE) + 1):
            got = parse_chunks([PIPELINE[:i], PIPELINE[i:]], self.use_hiredis)
            self.assertEqual(got, (PIPELINE_ARGV, None), f"split at {i}")

    def test_split_at_every_pair_of_offsets(self) -> None:
        data = multibulk(b"SET", b"k", b"v") + b"PING\r\n" + multibulk(b"GET", b"k")
        want = [[b"SET", b"k", b"v"], [b"PING"], [b"GET", b"k"]]
        for i in range(len(data) + 1):
            for j in range(i, len(data) + 1):
                got = parse_chunks([data[:i], data[i:j], data[j:]], self.use_hiredis)
                self.assertEqual(got, (want, None), f"split at {i}, {j}")

    def test_byte_by_byte(self) -> None:
        self.assertEqual(parse_chunks(bytewise(PIPELINE), self.use_hiredis), (PIPELINE_ARGV, None))

    def test_incomplete_returns_none(self) -> None:
        parser = RespParser(use_hiredis=self.use_hiredis)
        parser.feed(b"*2\r\n$3\r\nGET\r\n$1\r\n")
        self.assertIsNone(parser.next_command())
        self.assertIsNone(parser.next_command())
        parser.feed(b"k\r")
        self.assertIsNone(parser.next_command())
        parser.feed(b"\n")
        self.assertEqual(parser.next_command(), [b"GET", b"k"])
        self.assertIsNone(parser.next_command())
        self.assertEqual(parser.buffered, 0)

    def test_iterates_buffered_commands(self) -> None:
        parser = RespParser(use_hiredis=self.use_hiredis)
        parser.feed(PIPELINE)
        self.assertEqual(list(parser), PIPELINE_ARGV)

    def test_large_bulk_in_many_chunks(self) -> None:
        value = bytes(range(256)) * 4096  # 1 MiB
        data = multibulk(b"SET", b"k", value) + multibulk(b"GET", b"k")
        chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
        self.assertEqual(
            parse_chunks(chunks, self.use_hiredis), ([[b"SET", b"k", value], [b"GET", b"k"]], None)
        )

    def test_consumed_prefix_is_dropped(self) -> None:
        parser = RespParser(use_hiredis=self.use_hiredis)
        one = multibulk(b"SET", b"key", b"x" * 100)
        for _ in range(5000):
            parser.feed(one[:50])
            parser.next_command()
            parser.feed(one[50:])
            self.assertEqual(parser.next_command(), [b"SET", b"key", b"x" * 100])
        self.assertLessEqual(len(parser._buf), 2 * len(one))

    def test_compacts_a_long_partially_consumed_buffer(self) -> None:
        parser = RespParser(use_hiredis=self.use_hiredis)
        one = multibulk(b"GET", b"k" * 50)
        parser.feed(one * 3000 + one[:10])
        self.assertEqual(len(list(parser)), 3000)
        parser.feed(one[10:])
        self.assertLessEqual(len(parser._buf), len(one))
        self.assertEqual(parser.next_command(), [b"GET", b"k" * 50])

    def test_empty_requests_are_skipped(self) -> None:
        data = b"\r\n\n   \r\n*0\r\n*-1\r\n*-10\r\n" + multibulk(b"PING")
        self.assertEqual(self.parse(data), ([[b"PING"]], None))

    def test_inline_line_endings(self) -> None:
        self.assertEqual(
            self.parse(b"PING\nECHO a\r\nGET\tk\r\r\n"),
            ([[b"PING"], [b"ECHO", b"a"], [b"GET", b"k"]], None),
        )

    def test_inline_waits_for_newline(self) -> None:
        parser = RespParser(use_hiredis=self.use_hiredis)
        parser.feed(b"GET k\r")
        self.assertIsNone(parser.next_command())
        parser.feed(b"\n")
        self.assertEqual(parser.next_command(), [b"GET", b"k"])

    def test_inline_quoting(self) -> None:
        cases = [
            (b'set "a b" c', [b"set", b"a b", b"c"]),
            (b"set 'a b' c", [b"set", b"a b", b"c"]),
            (b'x "\\x41\\x4a\\n\\r\\t\\b\\a\\"\\\\\\q"', [b"x", b'AJ\n\r\t\b\x07"\\q']),
            (b'x "\\x4"', [b"x", b"x4"]),
            (b"x 'it\\'s' 'a\\nb'", [b"x", b"it's", b"a\\nb"]),
            (b'x ""', [b"x", b""]),
            (b"x ''", [b"x", b""]),
            (b'a"b c"', [b"ab c"]),
            (b"a'b c' d", [b"ab c", b"d"]),
            (b'"a"\t"b"', [b"a", b"b"]),
            (b"x a\x0bb \x0cc", [b"x", b"a\x0bb", b"c"]),
            (b"x a\x00 b c", [b"x", b"a"]),
        ]
        for line, want in cases:
            self.assertEqual(self.parse(line + b"\r\n"), ([want], None), line)
            self.assertEqual(split_inline(line), want, line)

    def test_unbalanced_quotes(self) -> None:
        for line in [
            b'set """test-key""" test-value',
            b'set "abc',
            b"set 'abc",
            b'set "a"b',
            b"set 'a'b",
            b'set "a\\"',
        ]:
            self.assert_error(
                line + b"\r\nPING\r\n", "Protocol error: unbalanced quotes in request"
            )

    def test_redis_protocol_suite_errors(self) -> None:
        cases = [
            (b"*20000000\r\n", "invalid multibulk length"),
            (b"*3000000000\r\n", "invalid multibulk length"),
            (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "expected '$', got 'f'"),
            (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", "invalid bulk length"),
            (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", "invalid bulk length"),
            (b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n", "invalid bulk length"),
            (b"*1\r\nfoo\r\n", "expected '$', got 'f'"),
        ]
        for data, reason in cases:
            self.assert_error(data, "Protocol error: " + reason)

    def test_invalid_multibulk_lengths(self) -> None:
        for count in [b"", b"abc", b"01", b"+1", b"1 ", b" 1", b"-0", b"-01", b"1.0", b"9" * 30]:
            self.assert_error(
                b"*" + count + b"\r\n$4\r\nPING\r\n", "Protocol error: invalid multibulk length"
            )

    def test_invalid_bulk_lengths(self) -> None:
        for length in [b"", b"-1", b"abc", b"03", b"+3", b" 3", b"3 ", b"9" * 30]:
            self.assert_error(
                b"*1\r\n$" + length + b"\r\nfoo\r\n", "Protocol error: invalid bulk length"
            )

    def test_not_a_bulk_string(self) -> None:
        # hiredis would accept these as array elements; a request may only hold bulk strings.
        for element, first in [
            (b"+PING\r\n", "+"),
            (b":1\r\n", ":"),
            (b"*1\r\n$1\r\na\r\n", "*"),
            (b"=7\r\ntxt:foo\r\n", "="),
            (b"_\r\n", "_"),
            (b"%1\r\n$1\r\na\r\n$1\r\nb\r\n", "%"),
            (b"(123\r\n", "("),
        ]:
            self.assert_error(
                b"*1\r\n" + element + multibulk(b"PING"),
                f"Protocol error: expected '$', got '{first}'",
            )

    def test_bad_bytes_after_bulk(self) -> None:
        for data in [
            b"*1\r\n$3\r\nfooXY",
            b"*1\r\n$3\r\nfoo\rX",
            b"*1\r\n$3\r\nfoo\n\r",
            b"*2\r\n$3\r\nfoo\r\n$2\r\nbar\r\n",
        ]:
            self.assert_error(data, "Protocol error: expected CRLF after bulk data")

    def test_max_bulk(self) -> None:
        ok = multibulk(b"SET", b"k", b"x" * 10)
        self.assertEqual(self.parse(ok, max_bulk=10), ([[b"SET", b"k", b"x" * 10]], None))
        self.assert_error(
            multibulk(b"SET", b"k", b"x" * 11), "Protocol error: invalid bulk length", max_bulk=10
        )
        # Rejected from the header alone, before any of the data arrives.
        self.assert_error(b"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length")

    def test_max_request_counts_every_argument(self) -> None:
        fits = multibulk(b"SET", b"k", b"x" * 96)  # 100 bytes of arguments
        over = multibulk(b"SET", b"k", b"x" * 97)
        message = "Protocol error: too big request (client-query-buffer-limit is 100 bytes)"
        self.assertEqual(
            self.parse(fits * 5, max_request=100), ([[b"SET", b"k", b"x" * 96]] * 5, None)
        )
        # Complete requests, enough of them for hiredis to frame: it defers to the check.
        self.assertEqual(
            self.parse(fits * 5 + over + fits, max_request=100),
            ([[b"SET", b"k", b"x" * 96]] * 5, message),
        )
        self.assert_error(over, message, max_request=100)
        # One argument over max-bulk is still "invalid bulk length", whatever the total.
        self.assert_error(
            multibulk(b"x" * 11), "Protocol error: invalid bulk length", max_bulk=10, max_request=5
        )

    def test_max_request_is_judged_before_the_data_arrives(self) -> None:
        parser = RespParser(use_hiredis=self.use_hiredis, max_request=1000)
        parser.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$997\r\n")
        with self.assertRaises(ProtocolError) as e:
            parser.next_command()
        self.assertIn("too big request", e.exception.message)
        # The default is Redis's client-query-buffer-limit, 1 GiB.
        self.assert_error(
            b"*1\r\n$1073741825\r\n",
            "Protocol error: too big request (client-query-buffer-limit is 1073741824 bytes)",
            max_bulk=2**40,
        )

    def test_max_multibulk(self) -> None:
        self.assertEqual(self.parse(b"*1048576\r\n"), ([], None))
        self.assert_error(b"*1048577\r\n", "Protocol error: invalid multibulk length")
        self.assert_error(
            multibulk(b"a", b"b", b"c"), "Protocol error: invalid multibulk length", max_multibulk=2
        )

    def test_inline_limit(self) -> None:
        line = b"x" * MAX_INLINE
        self.assertEqual(self.parse(line + b"\n"), ([[line]], None))
        self.assertEqual(self.parse(line[:-1] + b"\r\n"), ([[line[:-1]]], None))
        self.assert_error(line + b"x\n", "Protocol error: too big inline request")
        self.assert_error(line + b"x", "Protocol error: too big inline request")
        self.assert_error(b"\x00payload" * 9000, "Protocol error: too big inline request")
        parser = RespParser(use_hiredis=self.use_hiredis)
        parser.feed(line)
        self.assertIsNone(parser.next_command())

    def test_header_limits(self) -> None:
        self.assert_error(b"*\x00payload" * 9000, "Protocol error: too big mbulk count string")
        self.assert_error(b"*1\r\n$" + b"1" * 70000, "Protocol error: too big bulk count string")
        self.assert_error(
            b"*1\r\n$1" + b"0" * 40, "Protocol error: too big bulk count string", max_inline=40
        )
        self.assert_error(
            b"*1" + b"0" * 40, "Protocol error: too big mbulk count string", max_inline=40
        )

    def test_error_is_sticky(self) -> None:
        parser = RespParser(use_hiredis=self.use_hiredis)
        parser.feed(multibulk(b"PING") + b"*x\r\n" + multibulk(b"PING"))
        self.assertEqual(parser.next_command(), [b"PING"])
        for _ in range(2):
            with self.assertRaises(ProtocolError) as cm:
                parser.next_command()
            self.assertEqual(str(cm.exception), "Protocol error: invalid multibulk length")

    def test_commands_before_an_error_are_returned(self) -> None:
        data = multibulk(b"SET", b"k", b"v") + b"PING\r\n" + b"*1\r\nfoo\r\n"
        self.assertEqual(
            self.parse(data),
            ([[b"SET", b"k", b"v"], [b"PING"]], "Protocol error: expected '$', got 'f'"),
        )


class PurePythonParserTests(_ParserTests, SynchronousTestCase):
    use_hiredis = False


class HiredisParserTests(_ParserTests, SynchronousTestCase):
    use_hiredis = True

    def setUp(self) -> None:
        # Let hiredis frame even the short inputs used here.
        self.patch(parser_module, "_HIREDIS_MIN_RUN", 0)


class HiredisDefaultThresholdTests(_ParserTests, SynchronousTestCase):
    use_hiredis = True


class ParseInt64Tests(SynchronousTestCase):
    def test_valid(self) -> None:
        for raw, want in [
            (b"0", 0),
            (b"7", 7),
            (b"-7", -7),
            (b"9223372036854775807", 2**63 - 1),
            (b"-9223372036854775808", -(2**63)),
        ]:
            self.assertEqual(parse_int64(raw), want)

    def test_invalid(self) -> None:
        for raw in [
            b"",
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"1.5",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"1" * 5000,
            "٣".encode(),
        ]:
            self.assertIsNone(parse_int64(raw), raw)


class _RecordingReader:
    """Wraps hiredis.Reader, recording the bytes it is fed."""

    fed: list[bytes] = []

    def __init__(self) -> None:
        import hiredis

        self._reader = hiredis.Reader()

    def feed(self, buf: Any, off: int = 0, length: int = -1) -> None:
        end = len(buf) if length < 0 else off + length
        self.fed.append(bytes(buf[off:end]))
        self._reader.feed(buf, off, length)

    def gets(self) -> object:
        return self._reader.gets()


class HiredisExposureTests(SynchronousTestCase):
    """hiredis preallocates aggregates, so it must never see a big aggregate header."""

    def setUp(self) -> None:
        import hiredis

        class FakeHiredis:
            Reader = _RecordingReader
            ProtocolError = hiredis.ProtocolError

        _RecordingReader.fed = []
        self.patch(parser_module, "_hiredis", FakeHiredis)

    def test_big_aggregate_headers_are_not_fed(self) -> None:
        prefix = multibulk(b"SET", b"k", b"v") * 30
        for header, evil in [
            (b"*2000000000", b"*2000000000\r\n"),
            (b"*2000000000", b"*1\r\n*2000000000\r\n"),
            (b"~1000", b"*1\r\n~1000\r\n"),
            # hiredis skips the two bytes after bulk data unchecked.
            (b">99999", b"*2\r\n$1\r\naXY>99999\r\n"),
            (b"|1234", b"*2\r\n$1\r\naXY|1234\r\n"),
        ]:
            _RecordingReader.fed = []
            commands, error = parse_all(prefix + evil + prefix, use_hiredis=True)
            self.assertEqual(len(commands), 30)
            self.assertTrue(error and error.startswith("Protocol error:"), error)
            self.assertTrue(_RecordingReader.fed, "hiredis was not used at all")
            for chunk in _RecordingReader.fed:
                self.assertNotIn(header, chunk)

    def test_small_aggregate_headers_may_be_fed(self) -> None:
        data = multibulk(b"SET", b"k", b"v") * 30
        self.assertEqual(len(parse_all(data, use_hiredis=True)[0]), 30)
        self.assertEqual(b"".join(_RecordingReader.fed), data)

    def test_hiredis_sees_bounded_windows(self) -> None:
        data = multibulk(b"SET", b"k", b"v" * 100) * 1000
        self.assertEqual(len(parse_all(data, use_hiredis=True)[0]), 1000)
        self.assertLessEqual(max(map(len, _RecordingReader.fed)), 16384)
