"""``twistd eraftmeta``: one replica of the meta group (cluster configs + admin API)."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application.service import IService

from ..rpc.transport import parse_address
from .eraftkv import check_not_locked
from .options import BaseOptions, ConfigError, parse_peers

DEFAULT_PEERS = "127.0.0.1:8188"
DEFAULT_ADMIN = "127.0.0.1:8080"
DEFAULT_DATA = "./eraft-meta-data"


class Options(BaseOptions):
    """Options of ``twistd eraftmeta``; with none at all it runs a one-node meta group."""

    command_name = "eraftmeta"
    synopsis = "[--id N] [--data DIR] [--peers A,B,C] [--admin HOST:PORT] [--config FILE]"
    optParameters = [
        ["id", None, "0", "This node's index in --peers."],
        ["data", None, DEFAULT_DATA, "Data directory (one LevelDB)."],
        ["peers", None, DEFAULT_PEERS, "Comma-separated host:port of every member's peer port."],
        ["admin", None, DEFAULT_ADMIN, "host:port of the HTTP admin API (keep it on 127.0.0.1)."],
        ["fsync", None, "always", "always: every acknowledged change is fsynced; never: unsafe."],
        ["tick-ms", None, "100", "Raft tick in milliseconds."],
        ["election-ticks", None, "10", "Election timeout in ticks (randomised up to 2x)."],
        ["timeout", None, "5", "Seconds before an admin request that cannot commit fails (503)."],
        [
            "snapshot-entries",
            None,
            "10000",
            "Snapshot and compact the log every N entries (0: never).",
        ],
        ["config", None, None, "Read options from this file (command line wins)."],
    ]

    def postOptions(self) -> None:
        try:
            self.apply_config_file()
            self.validate()
        except ConfigError as e:
            sys.stderr.write(f"{self.command_name}: error: {e}\n")
            raise SystemExit(2) from e

    def validate(self) -> None:
        self["peers"] = parse_peers(self["peers"])
        self["id"] = self.int_option("id", 0, len(self["peers"]) - 1)
        try:
            parse_address(self["admin"])
        except ValueError as e:
            raise ConfigError(f"--admin: {e}") from e
        if self["admin"] in self["peers"]:
            raise ConfigError(f"--admin {self['admin']} is also a peer address")
        if self["fsync"] not in ("always", "never"):
            raise ConfigError(f"--fsync must be 'always' or 'never', got {self['fsync']!r}")
        self["tick-ms"] = self.int_option("tick-ms", 1, 10_000)
        self["election-ticks"] = self.int_option("election-ticks", 3, 1000)
        self["timeout"] = self.int_option("timeout", 1, 3600)
        self["snapshot-entries"] = self.int_option("snapshot-entries", 0, 2**31)
        data = self["data"]
        if os.path.exists(data) and not os.path.isdir(data):
            raise ConfigError(f"--data {data} exists and is not a directory")
        check_not_locked(data)


def makeService(options: Any) -> IService:
    """Build (but do not start) the meta node's services."""
    from ..meta.server import MetaServer

    return MetaServer.from_options(options)
