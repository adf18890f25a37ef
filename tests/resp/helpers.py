"""Shared helpers for the resp tests."""

from __future__ import annotations

from eraft_twisted.resp.parser import ProtocolError, RespParser


def multibulk(*args: bytes) -> bytes:
    """Encode one request the way clients do."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def parse_chunks(
    chunks: list[bytes], use_hiredis: bool, **limits: int
) -> tuple[list[list[bytes]], str | None]:
    """Feed ``chunks`` one by one, draining after each: (commands, error message or None)."""
    parser = RespParser(use_hiredis=use_hiredis, **limits)
    commands: list[list[bytes]] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (argv := parser.next_command()) is not None:
                commands.append(argv)
    except ProtocolError as e:
        return commands, e.message
    return commands, None


def parse_all(
    data: bytes, use_hiredis: bool, **limits: int
) -> tuple[list[list[bytes]], str | None]:
    """Feed ``data`` in one piece."""
    return parse_chunks([data], use_hiredis, **limits)


def bytewise(data: bytes) -> list[bytes]:
    """``data`` one byte per chunk."""
    return [data[i : i + 1] for i in range(len(data))]
