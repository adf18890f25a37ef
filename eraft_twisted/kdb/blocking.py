"""BLPOP, BRPOP, BLMOVE and BRPOPLPUSH through the router.

A blocking command may wait for minutes, so it cannot share the pooled,
pipelined connection to a group (it would hold up every command behind
it): each one gets its own connection to a server of the group owning its
slot, closed when the reply comes or when the client goes away (the node
then takes nothing for it). ``-MOVED`` is followed; the node applies the
command's rules and errors (timeouts, types).
"""

from __future__ import annotations

from typing import cast

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime

from ..hashslot import key_hash_slot
from ..resp.client import ReplyError, RespClientProtocol, RespReply
from ..resp.commands import CommandError, CommandTable
from ..resp.encoder import NULL_ARRAY, Reply
from ..resp.state import ConnectionState
from .router import Router

BLOCKING = {
    # name: (arity, first key, last key)
    "blpop": (-3, 1, -2),
    "brpop": (-3, 1, -2),
    "blmove": (6, 1, 2),
    "brpoplpush": (4, 1, 2),
}
MAX_REDIRECTS = 5


class RouterBlocking:
    """The blocking list commands of the router."""

    def __init__(self, router: Router, reactor: IReactorTime) -> None:
        self.router = router
        self.reactor = reactor

    def register(self, table: CommandTable) -> None:
        for name, (arity, first, last) in BLOCKING.items():
            table.register(name, arity, ["write", "blocking"], self.run, first, last, 1)

    def run(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[Reply]:
        first, last = BLOCKING[argv[0].decode("latin-1").lower()][1:]
        keys = argv[first : (last if last > 0 else len(argv) + last) + 1]
        slots = {key_hash_slot(k) for k in keys}
        if len(slots) != 1:
            raise CommandError("Keys in request don't hash to the same slot", code="CROSSSLOT")
        return defer.ensureDeferred(self._run(conn, argv, slots.pop()))

    async def _run(self, conn: ConnectionState, argv: list[bytes], slot: int) -> Reply:
        if self.router.config is None:
            await self.router.refresh()
        address: str | None = None
        for _ in range(MAX_REDIRECTS):
            group = self.router.owners[slot]
            target = address or self.router.server_of(group)
            address = None
            try:
                reply = await self._call(target, argv, conn)
            except ReplyError as e:
                if e.code == "MOVED":
                    address = str(e).split()[2]
                    continue
                raise CommandError(str(e).partition(" ")[2], code=e.code) from None
            return NULL_ARRAY if reply is None else reply  # type: ignore[no-any-return]
        raise CommandError("too many redirections", code="CLUSTERDOWN")

    def _call(
        self, address: str, argv: list[bytes], conn: ConnectionState
    ) -> defer.Deferred[RespReply]:
        host, _, port = address.rpartition(":")
        endpoint = TCP4ClientEndpoint(cast(IReactorTCP, self.reactor), host, int(port), timeout=5)
        proto = RespClientProtocol(keep_status=True, protocol=conn.protocol_version)

        def send(p: RespClientProtocol) -> defer.Deferred[RespReply]:
            watch: list[IDelayedCall] = []

            def check() -> None:
                if conn.closed:
                    p.close()  # the client left: the node must not pop for it
                else:
                    watch[:] = [self.reactor.callLater(1.0, check)]

            d = p.call(*argv)
            check()

            def done(result: object) -> object:
                for call in watch:
                    if call.active():
                        call.cancel()
                p.close()
                return result

            return d.addBoth(done)

        return connectProtocol(endpoint, proto).addCallback(send)
