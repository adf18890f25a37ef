"""eraftctl's one-line failures, and how a failed connection reads in them."""

from __future__ import annotations

from twisted.internet import defer, error


class CtlError(Exception):
    """A failure reported to the user as one line."""


def describe_connect_error(e: BaseException) -> str:
    """A few words on why a connection could not be made."""
    if isinstance(e, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, error.DNSLookupError):
        return "unknown host"
    if isinstance(e, error.TimeoutError | error.TCPTimedOutError | defer.TimeoutError):
        return "connection timed out"
    text = str(e).strip().rstrip(".")
    return text or e.__class__.__name__


def unwrap(e: BaseException) -> BaseException:
    """The real cause inside treq's and twisted.web's wrappers
    (``ResponseNeverReceived`` and the like)."""
    reasons = getattr(e, "reasons", None)
    if reasons:
        return unwrap(reasons[0].value)
    return e
