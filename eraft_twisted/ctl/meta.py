"""The meta group's HTTP admin API, as eraftctl reaches it (over treq)."""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from typing import Any, cast

from twisted.internet import defer, error

from .errors import CtlError, describe_connect_error, unwrap

JsonObject = dict[str, Any]
"""A decoded JSON object from the meta API (a config, a status, a report)."""


class HTTPResponse(typing.Protocol):
    """What eraftctl reads of a treq response besides its body."""

    code: int


class HTTPClient(typing.Protocol):
    """The part of treq's API eraftctl uses (``treq`` itself, or a test's stand-in)."""

    def request(self, method: str, url: str, **kwargs: object) -> defer.Deferred[HTTPResponse]: ...

    def content(self, response: HTTPResponse) -> defer.Deferred[bytes]: ...


class MetaClient:
    """JSON requests to the first reachable meta server of ``urls``."""

    def __init__(
        self, urls: Sequence[str], http: HTTPClient | None = None, timeout: float | None = None
    ) -> None:
        if http is None:
            import treq

            http = cast(HTTPClient, treq)
        self.urls = [u.rstrip("/") for u in urls]
        self.http = http
        self.timeout = timeout

    async def request(self, method: str, path: str, body: object = None) -> JsonObject:
        """The decoded JSON reply; raises CtlError on any failure."""
        problems = []
        for base in self.urls:
            kw: dict[str, object] = {}
            if body is not None:
                kw["json"] = body
            if self.timeout:
                kw["timeout"] = self.timeout
            try:
                response = await self.http.request(method, base + path, **kw)
                data = await self.http.content(response)
            except defer.CancelledError:
                raise CtlError(
                    f"{base} did not answer within {self.timeout:g}s"
                    + (" (the change may still be applied)" if method != "GET" else "")
                ) from None
            except Exception as e:
                cause = unwrap(e)
                if isinstance(cause, defer.CancelledError):
                    raise CtlError(f"{base} did not answer within {self.timeout:g}s") from None
                if isinstance(cause, error.ConnectError | error.DNSLookupError):
                    # Nothing was sent: the next server may take it.
                    problems.append(f"{base}: {describe_connect_error(cause)}")
                    continue
                raise CtlError(f"request to {base} failed: {describe_connect_error(cause)}") from e
            return self._decode(base, response.code, data)
        if len(problems) == 1:
            raise CtlError(f"cannot reach the meta server {problems[0]}")
        raise CtlError("cannot reach any meta server (" + "; ".join(problems) + ")")

    @staticmethod
    def _decode(base: str, code: int, data: bytes) -> JsonObject:
        try:
            payload = json.loads(data)
        except ValueError:
            first = data.decode("utf-8", "replace").strip().splitlines()
            raise CtlError(
                f"{base} answered HTTP {code} with a non-JSON body: "
                f"{first[0][:200] if first else '(empty)'}"
            ) from None
        if code >= 400:
            message = payload.get("error") if isinstance(payload, dict) else None
            raise CtlError(f"{message or 'request failed'} (HTTP {code})")
        return payload
