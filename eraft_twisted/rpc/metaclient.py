"""How kv nodes and the router reach the meta group: AMP to its peer ports.

Any meta member answers (reads are linearizable there, writes forwarded to
its leader); on a failure the next address is tried.
"""

from __future__ import annotations

from typing import Any

import msgpack
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import connectionDone
from twisted.protocols import amp
from twisted.python.failure import Failure

from .commands import MetaJoin, MetaQuery
from .transport import parse_address


class _MetaAMP(amp.AMP):
    gone = False

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.gone = True
        super().connectionLost(reason)


class AMPMetaClient:
    """Queries and registrations against a list of meta peer addresses."""

    def __init__(self, reactor: Any, addresses: list[str], timeout: float = 5.0) -> None:
        if not addresses:
            raise ValueError("no meta addresses")
        self.reactor = reactor
        self.addresses = addresses
        self.timeout = timeout
        self._proto: _MetaAMP | None = None
        self._next = 0

    @defer.inlineCallbacks
    def _call(self, command: type[amp.Command], **kw: Any) -> Any:
        last: Exception | None = None
        for _ in range(len(self.addresses)):
            proto = self._proto
            if proto is None or proto.gone:
                host, port = parse_address(self.addresses[self._next % len(self.addresses)])
                endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=self.timeout)
                try:
                    proto = yield connectProtocol(endpoint, _MetaAMP())
                except Exception as e:
                    last = e
                    self._next += 1
                    continue
                self._proto = proto
            try:
                d = proto.callRemote(command, **kw)
                result = yield d.addTimeout(self.timeout, self.reactor)
                return result
            except amp.RemoteAmpError:
                raise
            except Exception as e:
                last = e
                if proto.transport is not None:
                    proto.transport.loseConnection()
                self._proto = None
                self._next += 1
        raise ConnectionError(f"no meta server answered: {last}")

    def query(self, num: int) -> defer.Deferred[dict[str, Any] | None]:
        """Config ``num`` (-1: latest), or None if it does not exist yet."""
        d = self._call(MetaQuery, num=num)
        return d.addCallback(
            lambda r: msgpack.unpackb(r["config"], strict_map_key=False) if r["config"] else None
        )

    def join(self, group: int, servers: list[str]) -> defer.Deferred[int]:
        """Register (or update) a group's servers; fires with the new config number."""
        return self._call(MetaJoin, group=group, servers=servers).addCallback(lambda r: r["num"])

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.loseConnection()
        self._proto = None
