"""The reactor eraftctl runs on, unless a test hands in a clock."""

from __future__ import annotations

from typing import cast

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime


def global_reactor() -> IReactorTime:
    """The installed reactor (imported late: importing ctl must not install one)."""
    from twisted.internet import reactor

    return cast(IReactorTime, reactor)


def sleep(clock: IReactorTime, seconds: float) -> defer.Deferred[None]:
    """Fires after ``seconds`` on ``clock``."""
    return task.deferLater(clock, seconds, lambda: None)
