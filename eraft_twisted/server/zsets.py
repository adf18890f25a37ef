"""Sorted-set commands, declared as parse -> operation -> reply (see
:mod:`.datacmd`; argument parsing in :mod:`.zsetargs`)."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from ..resp.commands import CommandTable
from ..resp.encoder import Reply
from ..resp.state import ConnectionState
from .datacmd import DataCommands, OpCall, numkeys_at, plain
from .zsetargs import (
    int_arg,
    lex_range,
    parse_pop,
    parse_range,
    parse_scan,
    parse_store,
    parse_zadd,
    parse_zincrby,
    score_range,
)


def format_score(value: float) -> bytes:
    """A score as Redis 7.0 writes a double (``%.17g``)."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    return b"%.17g" % value


class Score(float):
    """A score reply: a RESP3 double / RESP2 bulk string in Redis's format."""

    def __repr__(self) -> str:
        return format_score(self).decode()


def _score(value: Any) -> Reply:
    return Score(value) if isinstance(value, float) else value  # type: ignore[no-any-return]


def as_score(result: Any, conn: ConnectionState) -> Reply:
    """A score, or nil; ZADD's count (an int) as it is."""
    return _score(result)


def as_scores(result: Any, conn: ConnectionState) -> Reply:
    return [_score(x) for x in result]


def as_pairs(result: Any, conn: ConnectionState) -> Reply:
    """``[member, score, ...]``: RESP2 flat, RESP3 ``[member, score]`` pairs."""
    if conn.protocol_version == 3:
        return [[result[i], Score(result[i + 1])] for i in range(0, len(result) - 1, 2)]
    return [_score(x) for x in result]


def as_scan(result: Any, conn: ConnectionState) -> Reply:
    """ZSCAN: scores as bulk strings in both protocols."""
    cursor, items = result
    return [cursor, [format_score(x) if isinstance(x, float) else x for x in items]]


class SortedSetCommands:
    """Registers the sorted-set commands on a :class:`DataCommands`."""

    def __init__(self, data: DataCommands) -> None:
        self.data = data

    def register(self, table: CommandTable) -> None:
        add = partial(self.data.add, table, group="sorted-set")
        add("zadd", -4, parse_zadd, as_score)
        add("zincrby", 4, parse_zincrby, as_score, write=True)
        add("zrem", -3, lambda a: OpCall("zrem", (a[1], a[2:])))
        add("zscore", 3, lambda a: OpCall("zscore", (a[1], a[2])), as_score)
        add("zmscore", -3, lambda a: OpCall("zmscore", (a[1], a[2:])), as_scores)
        add("zcard", 2, lambda a: OpCall("zcard", (a[1],)))
        add("zcount", 4, lambda a: OpCall("zcount", (a[1], score_range(a[2], a[3]))))
        add("zlexcount", 4, lambda a: OpCall("zlexcount", (a[1], lex_range(a[2], a[3]))))
        add("zrank", 3, lambda a: OpCall("zrank", (a[1], a[2], False)))
        add("zrevrank", 3, lambda a: OpCall("zrank", (a[1], a[2], True)), write=False)
        self._ranges(table)
        add(
            "zremrangebyrank",
            4,
            lambda a: OpCall("zremrange", (a[1], b"rank", int_arg(a[2]), int_arg(a[3]))),
            write=True,
        )
        add(
            "zremrangebyscore",
            4,
            lambda a: OpCall("zremrange", (a[1], b"score", score_range(a[2], a[3]), None)),
            write=True,
        )
        add(
            "zremrangebylex",
            4,
            lambda a: OpCall("zremrange", (a[1], b"lex", lex_range(a[2], a[3]), None)),
            write=True,
        )
        add("zpopmin", -2, parse_pop, self._pop_shape, write=True)
        add("zpopmax", -2, parse_pop, self._pop_shape, write=True)
        add(
            "zrangestore",
            -5,
            partial(parse_range, how=None, rev=None, store=True),
            last_key=2,
        )
        add("zunionstore", -4, parse_store, write=True, keys=numkeys_at(2))
        add("zinterstore", -4, parse_store, write=True, keys=numkeys_at(2))
        add("zscan", -3, parse_scan, as_scan)

    def _ranges(self, table: CommandTable) -> None:
        forms: dict[str, tuple[bytes | None, bool | None]] = {
            "zrange": (None, None),
            "zrangebyscore": (b"score", False),
            "zrevrange": (b"rank", True),
            "zrevrangebyscore": (b"score", True),
            "zrangebylex": (b"lex", False),
            "zrevrangebylex": (b"lex", True),
        }
        for name, (how, rev) in forms.items():
            self.data.add(
                table,
                name,
                -4,
                partial(parse_range, how=how, rev=rev),
                self._range_shape,
                group="sorted-set",
                write=False,
            )

    @staticmethod
    def _range_shape(result: Any, conn: ConnectionState) -> Reply:
        # The op's result does not say whether scores were asked for: a
        # flat list alternating member / float does.
        if len(result) >= 2 and isinstance(result[1], float):
            return as_pairs(result, conn)
        return plain(result, conn)

    @staticmethod
    def _pop_shape(result: Any, conn: ConnectionState) -> Reply:
        # With a count the op answers [member, score] pairs, without one a
        # flat [member, score] (what RESP3 replies tell apart).
        if result and isinstance(result[0], list):
            return as_pairs([x for pair in result for x in pair], conn)
        return as_scores(result, conn)
