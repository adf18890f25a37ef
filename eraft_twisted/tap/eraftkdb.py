"""``twistd eraftkdb``: the stateless RESP router in front of the shard groups."""

from __future__ import annotations

from twisted.application.service import IService

from .options import (
    BaseOptions,
    ConfigError,
    client_limit_parameters,
    parse_peers,
    validate_client_limits,
)


class Options(BaseOptions):
    """Options of ``twistd eraftkdb``."""

    command_name = "eraftkdb"
    synopsis = "--meta A,B,C [--listen HOST:PORT] [--config FILE]"
    optParameters = [
        ["listen", None, "127.0.0.1:12306", "host:port to serve the Redis protocol on."],
        ["meta", None, None, "Comma-separated host:port of the meta group's peer ports."],
        ["timeout", None, "5", "Seconds before a request fails."],
        ["maxclients", None, "10000", "Client connections served at once (as Redis)."],
        [
            "cluster",
            None,
            None,
            "Cluster id the meta group must have (GET /status on a meta node); "
            "by default the first meta node that answers sets it.",
        ],
        *client_limit_parameters(),
        ["config", None, None, "Read options from this file (command line wins)."],
    ]

    def validate(self) -> None:
        if not self["meta"]:
            raise ConfigError("--meta is required (the meta group's peer addresses)")
        self["meta"] = parse_peers(self["meta"])
        self.address_option("listen")
        self["timeout"] = self.int_option("timeout", 1, 3600)
        self["maxclients"] = self.int_option("maxclients", 1, 1_000_000)
        validate_client_limits(self)


def makeService(options: Options) -> IService:
    """Build (but do not start) the router."""
    from ..kdb.server import RouterServer

    return RouterServer.from_options(options)
