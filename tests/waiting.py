"""Waiting for a condition instead of sleeping a fixed time.

A test that sleeps N seconds and then asserts is flaky on a loaded machine
(the condition may need N + 1 seconds) and slow on an idle one. These
helpers poll the condition and return as soon as it holds, with a generous
deadline; past it they fail with a message saying what was awaited.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import TypeVar

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.trial.unittest import FailTest

T = TypeVar("T")

TIMEOUT = 30.0
INTERVAL = 0.1


def wait_until(
    predicate: Callable[[], T],
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    message: str = "condition",
    ignore: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Call ``predicate`` until it returns something true and return that.

    An exception of a type in ``ignore`` counts as "not yet" (a node still
    starting, an election under way); the last one is named in the
    failure. Fails the test (``FailTest``) once ``timeout`` seconds passed.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except ignore as e:
            last = e
        if time.monotonic() >= deadline:
            why = f" (last error: {type(last).__name__}: {last})" if last is not None else ""
            raise FailTest(f"timed out after {timeout:g}s waiting for {message}{why}")
        time.sleep(interval)


def wait_until_deferred(
    reactor: IReactorTime,
    predicate: Callable[[], T],
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    message: str = "condition",
) -> defer.Deferred[T]:
    """Like :func:`wait_until` for trial tests that run on the reactor: a
    Deferred firing with the first true result of ``predicate`` (called
    every ``interval`` seconds of ``reactor`` time), or failing with
    ``FailTest`` after ``timeout`` seconds. Exceptions propagate."""

    @defer.inlineCallbacks
    def poll() -> Generator[defer.Deferred[None], object, T]:
        deadline = reactor.seconds() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if reactor.seconds() >= deadline:
                raise FailTest(f"timed out after {timeout:g}s waiting for {message}")
            yield task.deferLater(reactor, interval, lambda: None)

    return poll()
