"""The ``twistd eraftkdb`` service: a RESP listener over a Router."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import NoReturn

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from .. import REDIS_VERSION
from ..net import tcp_endpoint
from ..resp.commands import CommandError, CommandTable
from ..resp.connection import register_connection_commands
from ..resp.protocol import MAX_CLIENTS, ClientLimits, RespServerFactory
from ..resp.state import ConnectionState
from ..rpc.metaclient import AMPMetaClient, WrongCluster
from .blocking import RouterBlocking
from .router import Router, RouterCommands
from .transactions import RouterTransactions

log = Logger()


class RouterServer(MultiService):
    """Serves RESP on ``listen``, routing by the meta group's config."""

    def __init__(
        self,
        listen: str,
        meta: list[str],
        reactor: IReactorTime | None = None,
        timeout: float = 5.0,
        max_clients: int = MAX_CLIENTS,
        client_limits: ClientLimits | None = None,
        cluster_id: str = "",
    ):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor: IReactorTime = reactor
        self.listen = listen
        self.meta = meta
        self.timeout = timeout
        self.max_clients = max_clients
        # More RespServerFactory limits by keyword (max_request, output_limit, idle_timeout).
        self.client_limits: ClientLimits = client_limits or {}
        self.cluster_id = cluster_id
        self.router: Router | None = None

    @classmethod
    def from_options(cls, options: usage.Options) -> RouterServer:
        return cls(
            options["listen"],
            options["meta"],
            timeout=options["timeout"],
            max_clients=options["maxclients"],
            client_limits={
                "max_request": options["client-query-buffer-limit"],
                "output_limit": options["client-output-buffer-limit"],
                "idle_timeout": options["client-idle-timeout"],
            },
            cluster_id=options.get("cluster") or "",
        )

    def startService(self) -> None:
        meta = AMPMetaClient(
            self.reactor, self.meta, timeout=self.timeout, cluster_id=self.cluster_id
        )
        self.router = Router(self.reactor, meta, timeout=self.timeout)
        table = CommandTable()
        register_connection_commands(table, {"version": REDIS_VERSION, "mode": "standalone"})
        RouterCommands(self.router).register(table)
        RouterTransactions(self.router, table).register()
        RouterBlocking(self.router, self.reactor).register(table)
        factory = RespServerFactory(
            table, max_clients=self.max_clients, clock=self.reactor, **self.client_limits
        )
        register_config(table, factory.client_settings)
        strports.service(
            tcp_endpoint(self.listen),
            factory,
            reactor=self.reactor,  # type: ignore[arg-type]  # a real reactor provides IReactorCore too
        ).setServiceParent(self)

        def refresh() -> defer.Deferred[None]:
            assert self.router is not None
            return self.router.refresh().addErrback(unreachable)

        def unreachable(f: Failure) -> None:
            # A refusal (WrongCluster) was logged once by the meta client.
            if not f.check(WrongCluster):
                log.info("meta group unreachable: {e}", e=f.value)

        timer = TimerService(1.0, refresh)
        timer.clock = self.reactor
        timer.setServiceParent(self)
        log.info("eraftkdb routing on {listen}, meta {meta}", listen=self.listen, meta=self.meta)
        super().startService()

    def stopService(self) -> defer.Deferred[None] | None:
        d = super().stopService()
        if self.router is not None:
            self.router.pool.close()
            self.router.pool3.close()
            self.router.meta.close()
        return d


def register_config(table: CommandTable, settings: Callable[[], dict[str, str]]) -> None:
    """CONFIG GET over the router's own ``settings()`` (Redis's names); CONFIG SET is refused."""

    def get(conn: ConnectionState, argv: list[bytes]) -> dict[str, str]:
        values = settings()
        found: dict[str, str] = {}
        for raw in argv[2:]:
            for name in fnmatch.filter(values, raw.decode("latin-1").lower()):
                found[name] = values[name]
        return found

    def set_(conn: ConnectionState, argv: list[bytes]) -> NoReturn:
        raise CommandError(
            f"CONFIG SET is not supported ('{argv[2].decode('latin-1')}'): restart the router "
            "with the option or its config file"
        )

    table.register("config", -2, ["admin"], None, 0, 0, 0)
    table.register_subcommand("config", "get", -3, ["admin", "stale"], get)
    table.register_subcommand("config", "set", -4, ["admin"], set_)
