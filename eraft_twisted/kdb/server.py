"""The ``twistd eraftkdb`` service: a RESP listener over a Router."""

from __future__ import annotations

from typing import Any

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.logger import Logger

from ..node.group import tcp_endpoint
from ..resp.commands import CommandTable, register_connection_commands
from ..resp.protocol import MAX_CLIENTS, RespServerFactory
from ..rpc.metaclient import AMPMetaClient
from .router import Router, RouterCommands

log = Logger()


class RouterServer(MultiService):
    """Serves RESP on ``listen``, routing by the meta group's config."""

    def __init__(
        self,
        listen: str,
        meta: list[str],
        reactor: Any = None,
        timeout: float = 5.0,
        max_clients: int = MAX_CLIENTS,
    ):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self.listen = listen
        self.meta = meta
        self.timeout = timeout
        self.max_clients = max_clients
        self.router: Router | None = None

    @classmethod
    def from_options(cls, options: Any) -> RouterServer:
        return cls(
            options["listen"],
            options["meta"],
            timeout=options["timeout"],
            max_clients=options["maxclients"],
        )

    def startService(self) -> None:
        meta = AMPMetaClient(self.reactor, self.meta, timeout=self.timeout)
        self.router = Router(self.reactor, meta, timeout=self.timeout)
        table = CommandTable()
        register_connection_commands(table, {"version": "7.2.0", "mode": "standalone"})
        RouterCommands(self.router).register(table)
        strports.service(
            tcp_endpoint(self.listen), RespServerFactory(table, max_clients=self.max_clients)
        ).setServiceParent(self)

        def refresh() -> Any:
            assert self.router is not None
            return self.router.refresh().addErrback(
                lambda f: log.info("meta group unreachable: {e}", e=f.value)
            )

        TimerService(1.0, refresh).setServiceParent(self)
        log.info("eraftkdb routing on {listen}, meta {meta}", listen=self.listen, meta=self.meta)
        super().startService()

    def stopService(self) -> Any:
        d = super().stopService()
        if self.router is not None:
            self.router.pool.close()
            self.router.meta.close()
        return d
