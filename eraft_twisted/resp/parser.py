"""Incremental RESP request parser (multibulk and inline), with Redis's limits and errors.

The buffer is a ``bytearray`` plus a read offset; the consumed prefix is
dropped only once it is large, so a pipeline of N commands costs O(N) and a
big bulk argument arriving in many chunks is appended, never re-copied.

Framing follows Redis's ``processMultibulkBuffer`` / ``processInlineBuffer``
with two deliberate tightenings that only affect malformed input:

* header lines must end in ``\\r\\n`` (Redis accepts ``\\r`` plus any byte) and
  the two bytes after a bulk argument must be ``\\r\\n`` (Redis skips them
  unchecked), so a wrong length is reported instead of silently mis-framing
  the following commands;
* a line longer than the inline limit is rejected even when it arrived in
  one piece, so the verdict never depends on how the input was split.

A NUL byte in an inline line ends that line's arguments, as in Redis's
``sdssplitargs``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

_hiredis: Any
try:
    import hiredis as _hiredis
except ImportError:  # pragma: no cover - hiredis is a hard dependency, but stay importable
    _hiredis = None

__all__ = [
    "MAX_BULK",
    "MAX_INLINE",
    "MAX_MULTIBULK",
    "MAX_REQUEST",
    "ProtocolError",
    "RespParser",
    "parse_int64",
    "split_inline",
]

MAX_BULK = 512 * 1024 * 1024
MAX_MULTIBULK = 1024 * 1024
MAX_INLINE = 64 * 1024
# All of one request's arguments together (Redis's client-query-buffer-limit default),
# so a request holding one argument of MAX_BULK still fits.
MAX_REQUEST = 1024 * 1024 * 1024

# Drop the consumed prefix of the buffer once it is at least this big.
_COMPACT_AT = 64 * 1024

# hiredis is handed at most this many bytes at a time ...
_HIREDIS_WINDOW = 16384
# ... and not bothered for less than this (a lone request parses as fast here).
_HIREDIS_MIN_RUN = 256
_HIREDIS_BACKOFF = 8
# ... and never an array/set/push/attribute header of 1000 elements or more (4+
# digits): it preallocates the list, so "*2000000000" would cost gigabytes and
# seconds. (It skips the two bytes after bulk data unchecked, so such a header
# can hide anywhere, not only at a line start.)
_AGGREGATE_LIMIT_DIGITS = 4
_SCAN_TABLE = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x2A if b in b"*~>|" else 0x2E for b in range(256)
)
_DANGER = b"*" + b"0" * _AGGREGATE_LIMIT_DIGITS

_STAR = 0x2A
_DOLLAR = 0x24
_CR = 0x0D
_LF = 0x0A

# C isspace() in the "C" locale: what sdssplitargs skips between arguments.
_ISSPACE = frozenset(b" \t\n\r\x0b\x0c")
# Bytes that end an unquoted argument in sdssplitargs (\v and \f do not).
_UNQUOTED_END = frozenset(b" \t\n\r")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord("n"): 0x0A, ord("r"): 0x0D, ord("t"): 0x09, ord("b"): 0x08, ord("a"): 0x07}

_INT64_MAX = 2**63 - 1


class ProtocolError(Exception):
    """Malformed request. ``str(exc)`` is Redis's text, e.g. ``Protocol error: invalid bulk length``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _error(reason: str) -> ProtocolError:
    return ProtocolError("Protocol error: " + reason)


def parse_int64(line: bytes | bytearray) -> int | None:
    """Parse a decimal int64 as strictly as Redis's ``string2ll`` (no sign '+', spaces or
    leading zeros); None if ``line`` is not one."""
    if len(line) > 20:
        return None
    if line.isdigit():
        if line[0] == 0x30 and len(line) > 1:
            return None
        n = int(line)
        return n if n <= _INT64_MAX else None
    if len(line) > 1 and line[0] == 0x2D and line[1] != 0x30 and line[1:].isdigit():
        n = -int(line[1:])
        return n if n >= -_INT64_MAX - 1 else None
    return None


def split_inline(line: bytes) -> list[bytes]:
    """Split one inline request line into arguments, with Redis's ``sdssplitargs`` quoting.

    Raises ProtocolError("Protocol error: unbalanced quotes in request") on a
    bad quote.
    """
    nul = line.find(b"\x00")
    if nul >= 0:
        line = line[:nul]
    if b'"' not in line and b"'" not in line and b"\x0b" not in line and b"\x0c" not in line:
        return line.split()
    return _split_quoted(line)


def _split_quoted(line: bytes) -> list[bytes]:
    args: list[bytes] = []
    n = len(line)
    i = 0
    while True:
        while i < n and line[i] in _ISSPACE:
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        in_dq = in_sq = False
        while True:
            c = line[i] if i < n else -1
            nxt = line[i + 1] if i + 1 < n else -1
            if in_dq:
                if (
                    c == 0x5C
                    and nxt == 0x78
                    and i + 3 < n
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and nxt != -1:
                    i += 1
                    cur.append(_ESCAPES.get(nxt, nxt))
                elif c == 0x22:
                    # The closing quote must be followed by a space or the end.
                    if nxt != -1 and nxt not in _ISSPACE:
                        raise _error("unbalanced quotes in request")
                    i += 1
                    break
                elif c == -1:
                    raise _error("unbalanced quotes in request")
                else:
                    cur.append(c)
            elif in_sq:
                if c == 0x5C and nxt == 0x27:
                    i += 1
                    cur.append(0x27)
                elif c == 0x27:
                    if nxt != -1 and nxt not in _ISSPACE:
                        raise _error("unbalanced quotes in request")
                    i += 1
                    break
                elif c == -1:
                    raise _error("unbalanced quotes in request")
                else:
                    cur.append(c)
            else:
                if c == -1:
                    break
                if c in _UNQUOTED_END:
                    i += 1
                    break
                if c == 0x22:
                    in_dq = True
                elif c == 0x27:
                    in_sq = True
                else:
                    cur.append(c)
            i += 1
        args.append(bytes(cur))


class RespParser:
    """Incremental parser of client requests: ``feed()`` bytes, then ``next_command()``.

    Returns each request as a non-empty ``list[bytes]`` (the argv). Empty
    inline lines, ``*0`` and negative multibulk counts are skipped, as Redis
    does. Malformed input raises ProtocolError; after that the parser is dead
    and raises the same error again.

    Limits, each judged from a header before the data behind it is
    buffered: more than ``max_multibulk`` arguments is ``invalid multibulk
    length``, an argument over ``max_bulk`` bytes ``invalid bulk length``,
    and arguments adding up to more than ``max_request`` bytes ``too big
    request``.

    ``use_hiredis`` (default: on when hiredis is importable) parses runs of
    complete multibulk requests with ``hiredis.Reader`` and validates their
    framing; the pure-Python path handles inline requests, partial requests
    and errors, so both give identical results.
    """

    def __init__(
        self,
        max_bulk: int = MAX_BULK,
        max_multibulk: int = MAX_MULTIBULK,
        max_inline: int = MAX_INLINE,
        use_hiredis: bool | None = None,
        max_request: int = MAX_REQUEST,
    ) -> None:
        self.max_bulk = max_bulk
        self.max_multibulk = max_multibulk
        self.max_inline = max_inline
        self.max_request = max_request
        if use_hiredis is None:
            use_hiredis = _hiredis is not None
        if max_inline < 32:
            # The hiredis path does not apply the line limit to "$<len>" headers,
            # which only matters for limits shorter than the longest valid header.
            use_hiredis = False
        elif use_hiredis and _hiredis is None:  # pragma: no cover
            raise RuntimeError("hiredis is not installed")
        self.use_hiredis = use_hiredis
        self._buf = bytearray()
        self._pos = 0
        # State of a multibulk request that is only partly buffered.
        self._argv: list[bytes] | None = None
        self._left = 0
        self._bulklen = -1
        self._size = 0
        # Where to resume looking for the end of a line already searched in vain, so
        # a long line arriving in many small pieces is not rescanned from its start.
        self._seek = 0
        # Requests already framed by hiredis, not yet handed out.
        self._ready: deque[list[bytes]] = deque()
        self._failed: ProtocolError | None = None
        # Python-parsed requests to go before trying hiredis again.
        self._hiredis_wait = 0
        # The last window scanned for big aggregate headers: its start and mapped bytes.
        self._scan_at = 0
        self._scan = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a command."""
        return len(self._buf) - self._pos

    @property
    def at_boundary(self) -> bool:
        """True when no part of a command is buffered (everything fed was returned)."""
        return self._argv is None and not self._ready and self._pos >= len(self._buf)

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        buf = self._buf
        pos = self._pos
        if self._scan:
            self._scan = bytearray()
        if pos:
            if pos == len(buf):
                buf.clear()
                self._pos = self._seek = 0
            elif pos >= _COMPACT_AT and pos * 2 >= len(buf):
                del buf[:pos]
                self._pos = self._seek = 0
        buf += data

    def __iter__(self) -> Iterator[list[bytes]]:
        """Yield every complete command currently buffered."""
        while (argv := self.next_command()) is not None:
            yield argv

    def next_command(self) -> list[bytes] | None:
        """Return the next complete command, or None if more data is needed."""
        if self._ready:
            return self._ready.popleft()
        if self._failed is not None:
            raise self._failed
        try:
            while True:
                buf = self._buf
                pos = self._pos
                if pos >= len(buf):
                    return None
                if self._argv is not None:
                    argv = self._multibulk()
                elif buf[pos] != _STAR:
                    argv = self._inline()
                elif not self.use_hiredis:
                    argv = self._multibulk()
                else:
                    if not self._hiredis_wait and len(buf) - pos >= _HIREDIS_MIN_RUN:
                        if self._hiredis_run():
                            # Stopped short by a suspicious header: skip a few requests
                            # before paying for another try.
                            self._hiredis_wait = _HIREDIS_BACKOFF
                        if self._ready:
                            return self._ready.popleft()
                    argv = self._multibulk()
                    if argv is None or self._pos - pos >= _HIREDIS_WINDOW // 4:
                        # After a big or partial request a window would likely hold nothing.
                        self._hiredis_wait = max(self._hiredis_wait, 1)
                    elif self._hiredis_wait:
                        self._hiredis_wait -= 1
                if argv is None:
                    return None
                if argv:
                    return argv
        except ProtocolError as e:
            self._failed = e
            raise

    def _inline(self) -> list[bytes] | None:
        buf = self._buf
        pos = self._pos
        limit = self.max_inline
        seek = self._seek
        nl = buf.find(b"\n", pos if pos >= seek else seek, pos + limit + 1)
        if nl < 0:
            self._seek = len(buf)
            if len(buf) - pos > limit:
                raise _error("too big inline request")
            return None
        end = nl - 1 if nl > pos and buf[nl - 1] == _CR else nl
        line = bytes(buf[pos:end])
        self._pos = nl + 1
        return split_inline(line)

    def _multibulk(self) -> list[bytes] | None:
        buf = self._buf
        pos = self._pos
        limit = self.max_inline
        argv = self._argv
        if argv is None:
            seek = self._seek
            nl = buf.find(b"\r\n", pos if pos >= seek else seek, pos + limit + 2)
            if nl < 0:
                self._seek = len(buf) - 1
                # limit + 1: the last buffered byte may be the line's '\r'.
                if len(buf) - pos > limit + 1:
                    raise _error("too big mbulk count string")
                return None
            count = parse_int64(buf[pos + 1 : nl])
            if count is None or count > self.max_multibulk:
                raise _error("invalid multibulk length")
            pos = nl + 2
            if count <= 0:
                self._pos = pos
                return []
            argv = []
            left = count
            bulklen = -1
            size = 0
        else:
            left = self._left
            bulklen = self._bulklen
            size = self._size
        end = len(buf)
        max_bulk = self.max_bulk
        while left:
            if bulklen < 0:
                seek = self._seek
                nl = buf.find(b"\r\n", pos if pos >= seek else seek, pos + limit + 2)
                if nl < 0:
                    self._seek = end - 1
                    if end - pos > limit + 1:
                        raise _error("too big bulk count string")
                    break
                if buf[pos] != _DOLLAR:
                    raise _error(f"expected '$', got '{chr(buf[pos])}'")
                digits = buf[pos + 1 : nl]
                if (
                    not digits.isdigit()
                    or len(digits) > 19
                    or (digits[0] == 0x30 and len(digits) > 1)
                ):
                    raise _error("invalid bulk length")
                bulklen = int(digits)
                if bulklen > max_bulk:
                    raise _error("invalid bulk length")
                size += bulklen
                if size > self.max_request:
                    # Judged from the header, before the data is buffered.
                    raise _error(
                        f"too big request (client-query-buffer-limit is {self.max_request} bytes)"
                    )
                pos = nl + 2
            stop = pos + bulklen
            if end < stop + 2:
                break
            if buf[stop] != _CR or buf[stop + 1] != _LF:
                raise _error("expected CRLF after bulk data")
            argv.append(bytes(buf[pos:stop]))
            pos = stop + 2
            bulklen = -1
            left -= 1
        self._pos = pos
        if left:
            self._argv = argv
            self._left = left
            self._bulklen = bulklen
            self._size = size
            return None
        self._argv = None
        return argv

    def _hiredis_run(self) -> bool:
        """Frame complete multibulk requests at the read offset with hiredis.

        Returns True if a suspicious aggregate header kept it from framing anything.

        hiredis accepts more than a request may contain (``+`` simple strings,
        RESP3 types, nested arrays, ``$-1``), so each request's bytes are
        checked against the canonical ``*N`` / ``$len`` layout; at the first
        one that does not match, or is incomplete, the run stops and the
        pure-Python path takes over at that request.

        hiredis allocates an aggregate's list as soon as it reads the header,
        so it only ever sees a window of at most ``_HIREDIS_WINDOW`` bytes
        that was scanned for aggregate headers with ``_AGGREGATE_LIMIT_DIGITS``
        or more digits, and it stops before the first one.
        """
        buf = self._buf
        pos = start = self._pos
        scan_at = self._scan_at
        if scan_at <= pos < scan_at + len(self._scan):
            # Reuse the last scan: bytes there are unchanged until feed() moves them.
            scan = self._scan
        else:
            scan = self._scan = buf[pos : pos + _HIREDIS_WINDOW].translate(_SCAN_TABLE)
            scan_at = self._scan_at = pos
        danger = scan.find(_DANGER, pos - scan_at)
        stop = scan_at + (danger if danger >= 0 else len(scan))
        ready = self._ready
        if stop - pos >= 4:
            reader = _hiredis.Reader()
            reader.feed(buf, pos, stop - pos)
            gets = reader.gets
            check_bulk = stop - pos > self.max_bulk
            check_request = stop - pos > self.max_request
            max_count = self.max_multibulk
            while pos < stop:
                try:
                    argv = gets()
                except _hiredis.ProtocolError:
                    break
                if not argv or type(argv) is not list or buf[pos] != _STAR:
                    break
                n = len(argv)
                if n > max_count:
                    break
                p = pos + 3 + len(str(n))
                ok = True
                total = 0
                for a in argv:
                    if buf[p] != _DOLLAR or a is None:
                        ok = False
                        break
                    size = len(a)
                    total += size
                    p += 3 + len(str(size)) + size
                    if buf[p] != _CR or buf[p + 1] != _LF or (check_bulk and size > self.max_bulk):
                        ok = False
                        break
                    p += 2
                if not ok or (check_request and total > self.max_request):
                    break
                ready.append(argv)
                pos = p
            self._pos = pos
        return danger >= 0 and pos == start
