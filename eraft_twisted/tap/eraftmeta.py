"""``twistd eraftmeta``: one replica of the meta group (cluster configs + admin API)."""

from __future__ import annotations

from twisted.application.service import IService

from .options import ConfigError, RaftGroupOptions, raft_group_parameters

DEFAULT_PEERS = "127.0.0.1:8188"
DEFAULT_ADMIN = "127.0.0.1:8080"
DEFAULT_DATA = "./eraft-meta-data"


class Options(RaftGroupOptions):
    """Options of ``twistd eraftmeta``; with none at all it runs a one-node meta group."""

    command_name = "eraftmeta"
    synopsis = "[--id N] [--data DIR] [--peers A,B,C] [--admin HOST:PORT] [--config FILE]"
    optParameters = [
        *raft_group_parameters(
            DEFAULT_DATA,
            DEFAULT_PEERS,
            "Seconds before an admin request that cannot commit fails (503).",
        ),
        ["admin", None, DEFAULT_ADMIN, "host:port of the HTTP admin API (keep it on 127.0.0.1)."],
    ]

    def validate(self) -> None:
        super().validate()
        self.address_option("admin")
        if self["admin"] in self["peers"]:
            raise ConfigError(f"--admin {self['admin']} is also a peer address")


def makeService(options: Options) -> IService:
    """Build (but do not start) the meta node's services."""
    from ..meta.server import MetaServer

    return MetaServer.from_options(options)
