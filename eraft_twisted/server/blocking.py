"""BLPOP, BRPOP, BLMOVE and BRPOPLPUSH.

A blocking pop is a pop that, finding every list empty, waits for a push
and tries again. Each try is an ordinary replicated write (``bpop`` /
``lmove``), so exactly one client gets each element, whichever node it
waits on, and an element is never half-taken when the leader changes.
A waiting client listens for applied writes to its keys on the node it is
connected to (every replica applies every push); it starts listening
before each try, so a push that lands between a try and the wait still
wakes it. The timeout is this node's clock; 0 waits forever. Inside MULTI
the commands do not block: EXEC runs the try once, as Redis does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from ..kv.store import KVStore
from ..resp.commands import Command, CommandError, CommandTable
from ..resp.encoder import NULL_ARRAY, Reply
from ..resp.state import ConnectionState
from .datacmd import DataCommands, OpCall, Shape, plain
from .lists import parse_side
from .seams import Answer


def parse_timeout(raw: bytes) -> float:
    """Seconds to wait (0: forever), as Redis reads it: a long double
    (``strtold``: no spaces, hex allowed) times 1000, truncated to whole
    milliseconds; one that overflows is "negative", as it is in Redis."""
    text = raw.decode("latin-1")
    not_float = CommandError("timeout is not a float or out of range")
    if not text or text != text.strip() or "_" in text:
        raise not_float
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = float.fromhex(text)
        except ValueError:
            raise not_float from None
    if math.isnan(seconds):
        raise not_float
    ms = seconds * 1000
    if math.isinf(ms) or abs(ms) >= 2**63 or int(ms) < 0:
        raise CommandError("timeout is negative")
    return int(ms) / 1000


def _bpop(left: bool, argv: list[bytes]) -> OpCall:
    parse_timeout(argv[-1])
    return OpCall("bpop", (argv[1:-1], left))


def _blmove(argv: list[bytes]) -> OpCall:
    from_left, to_left = parse_side(argv[3]), parse_side(argv[4])
    parse_timeout(argv[5])
    return OpCall("lmove", (argv[1], argv[2], from_left, to_left))


def _brpoplpush(argv: list[bytes]) -> OpCall:
    parse_timeout(argv[3])
    return OpCall("lmove", (argv[1], argv[2], False, True))


def _pair_or_null(result: Any, conn: ConnectionState) -> Reply:
    return NULL_ARRAY if result is None else plain(result, conn)


class _Waiter:
    """One blocked client: the keys it waits on and whether a write to one
    of them landed since it last tried."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys
        self.woken = False
        self.wake: Callable[[], object] | None = None

    def touched(self, key: bytes) -> object:
        self.woken = True
        if self.wake is not None:
            wake, self.wake = self.wake, None
            wake()
        return None


class BlockingPops:
    """Registers the blocking list commands on a :class:`DataCommands`."""

    def __init__(self, data: DataCommands, store: KVStore, clock: IReactorTime) -> None:
        self.data = data
        self.store = store
        self.clock = clock

    def register(self, table: CommandTable) -> None:
        specs: list[tuple[str, int, Callable[[list[bytes]], OpCall], Shape, int, int]] = [
            ("blpop", -3, lambda a: _bpop(True, a), _pair_or_null, -2, -1),
            ("brpop", -3, lambda a: _bpop(False, a), _pair_or_null, -2, -1),
            ("blmove", 6, _blmove, _pair_or_null, 2, 5),
            ("brpoplpush", 4, _brpoplpush, _pair_or_null, 2, 3),
        ]
        for name, arity, parse, shape, last_key, timeout_at in specs:
            cmd = self.data.add(
                table, name, arity, parse, shape, last_key=last_key, write=True,
                flags=("blocking",), group="list",
            )  # fmt: skip
            cmd.handler = self._blocking(cmd, parse, shape, timeout_at)

    def _blocking(
        self, cmd: Command, parse: Callable[[list[bytes]], OpCall], shape: Shape, timeout_at: int
    ) -> Callable[[ConnectionState, list[bytes]], Answer]:
        def handler(conn: ConnectionState, argv: list[bytes]) -> Answer:
            call = parse(argv)
            timeout = parse_timeout(argv[timeout_at])
            return self._wait(cmd, call, shape, conn, argv, timeout)

        return handler

    def _wait(
        self,
        cmd: Command,
        call: OpCall,
        shape: Shape,
        conn: ConnectionState,
        argv: list[bytes],
        timeout: float,
    ) -> defer.Deferred[Any]:
        keys = cmd.keys(argv)
        waiter = _Waiter(list(dict.fromkeys(keys)))
        done: defer.Deferred[Any] = defer.Deferred()
        timer: IDelayedCall | None = None
        trying = False
        expired = False
        listeners = self.store.key_listeners

        def listen() -> None:
            for key in waiter.keys:
                listeners.setdefault(key, set()).add(waiter.touched)

        def stop_listening() -> None:
            waiter.wake = None
            for key in waiter.keys:
                found = listeners.get(key)
                if found is not None:
                    found.discard(waiter.touched)
                    if not found:
                        del listeners[key]

        def finish(result: object) -> None:
            nonlocal timer
            stop_listening()
            if timer is not None and timer.active():
                timer.cancel()
            timer = None
            if not done.called:
                done.callback(result)

        def attempt() -> None:
            nonlocal trying
            if done.called:
                return
            if conn.closed:
                finish(None)  # nobody to answer: take nothing
                return
            waiter.woken = False
            trying = True
            d = defer.maybeDeferred(self.data.run, cmd, call, plain, conn, argv)
            d.addCallbacks(tried, failed)

        def tried(result: object) -> None:
            nonlocal trying
            trying = False
            if done.called:
                return
            if result is not None:
                finish(shape(result, conn))
            elif expired:
                finish(shape(None, conn))
            elif waiter.woken:
                attempt()
            else:
                waiter.wake = lambda: self.clock.callLater(0, attempt)

        def failed(f: Any) -> None:
            nonlocal trying
            trying = False
            stop_listening()
            if timer is not None and timer.active():
                timer.cancel()
            if not done.called:
                done.errback(f)

        def timed_out() -> None:
            nonlocal timer, expired
            timer = None
            expired = True
            if not trying:  # a try under way may still take an element: its answer wins
                finish(shape(None, conn))

        listen()
        if timeout > 0:
            timer = self.clock.callLater(timeout, timed_out)
        attempt()
        return done
