"""``twistd eraftkv``: one replica of one shard group."""

from __future__ import annotations

from twisted.application.service import IService

from .options import (
    RaftGroupOptions,
    client_limit_parameters,
    parse_peers,
    raft_group_parameters,
    validate_client_limits,
)

DEFAULT_PEERS = "127.0.0.1:8088"
DEFAULT_RESP = "127.0.0.1:6379"
DEFAULT_DATA = "./eraft-data"


class Options(RaftGroupOptions):
    """Options of ``twistd eraftkv``; with none at all it runs a one-node group."""

    command_name = "eraftkv"
    synopsis = "[--id N] [--data DIR] [--peers A,B,C] [--resp HOST:PORT] [--config FILE]"
    optParameters = [
        *raft_group_parameters(
            DEFAULT_DATA, DEFAULT_PEERS, "Seconds before a client request fails with -TIMEOUT."
        ),
        ["resp", None, DEFAULT_RESP, "host:port to serve the Redis protocol on."],
        ["meta", None, None, "Comma-separated host:port of the meta group (sharded mode)."],
        ["group", None, "1", "Shard group id (with --meta)."],
        ["max-bulk", None, str(512 * 1024 * 1024), "Largest bulk string accepted, in bytes."],
        ["maxclients", None, "10000", "Client connections served at once (as Redis)."],
        *client_limit_parameters(),
    ]
    optFlags = [
        [
            "join",
            None,
            "Join an existing group (ask its members to add this node) "
            "instead of bootstrapping a new one.",
        ],
    ]

    def validate(self) -> None:
        super().validate()
        self.address_option("resp")
        self["max-bulk"] = self.int_option("max-bulk", 1024, 2**40)
        self["maxclients"] = self.int_option("maxclients", 1, 1_000_000)
        validate_client_limits(self)
        self["group"] = self.int_option("group", 0, 2**31)
        if self["meta"]:
            self["meta"] = parse_peers(self["meta"])


def makeService(options: Options) -> IService:
    """Build (but do not start) the node's services."""
    from ..server.kvserver import KVServer

    return KVServer.from_options(options)
