"""``twistd eraftkv``: one replica of one shard group."""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService

from ..rpc.transport import parse_address
from .options import BaseOptions, ConfigError, parse_peers

DEFAULT_PEERS = "127.0.0.1:8088"
DEFAULT_RESP = "127.0.0.1:6379"
DEFAULT_DATA = "./eraft-data"


class Options(BaseOptions):
    """Options of ``twistd eraftkv``; with none at all it runs a one-node group."""

    command_name = "eraftkv"
    synopsis = "[--id N] [--data DIR] [--peers A,B,C] [--resp HOST:PORT] [--config FILE]"
    optParameters = [
        ["id", None, "0", "This node's index in --peers (svr_id)."],
        ["data", None, DEFAULT_DATA, "Data directory (one LevelDB)."],
        ["peers", None, DEFAULT_PEERS, "Comma-separated host:port of every member's peer port."],
        ["resp", None, DEFAULT_RESP, "host:port to serve the Redis protocol on."],
        ["meta", None, None, "Comma-separated host:port of the meta group (sharded mode)."],
        ["group", None, "1", "Shard group id (with --meta)."],
        ["fsync", None, "always", "always: every acknowledged write is fsynced; never: unsafe."],
        ["tick-ms", None, "100", "Raft tick in milliseconds."],
        ["election-ticks", None, "10", "Election timeout in ticks (randomised up to 2x)."],
        ["timeout", None, "5", "Seconds before a client request fails with -TIMEOUT."],
        ["max-bulk", None, str(512 * 1024 * 1024), "Largest bulk string accepted, in bytes."],
        [
            "snapshot-entries",
            None,
            "10000",
            "Snapshot and compact the log every N entries (0: never).",
        ],
        ["config", None, None, "Read options from this file (command line wins)."],
    ]
    optFlags = [
        [
            "join",
            None,
            "Join an existing group (ask its members to add this node) "
            "instead of bootstrapping a new one.",
        ],
    ]

    def postOptions(self) -> None:
        try:
            self.apply_config_file()
            self.validate()
        except ConfigError as e:
            import sys

            sys.stderr.write(f"{self.command_name}: error: {e}\n")
            raise SystemExit(2) from e

    def validate(self) -> None:
        self["peers"] = parse_peers(self["peers"])
        self["id"] = self.int_option("id", 0, len(self["peers"]) - 1)
        try:
            parse_address(self["resp"])
        except ValueError as e:
            raise ConfigError(f"--resp: {e}") from e
        if self["fsync"] not in ("always", "never"):
            raise ConfigError(f"--fsync must be 'always' or 'never', got {self['fsync']!r}")
        self["tick-ms"] = self.int_option("tick-ms", 1, 10_000)
        self["election-ticks"] = self.int_option("election-ticks", 3, 1000)
        self["timeout"] = self.int_option("timeout", 1, 3600)
        self["max-bulk"] = self.int_option("max-bulk", 1024, 2**40)
        self["group"] = self.int_option("group", 0, 2**31)
        self["snapshot-entries"] = self.int_option("snapshot-entries", 0, 2**31)
        if self["meta"]:
            self["meta"] = parse_peers(self["meta"])
        data = self["data"]
        if os.path.exists(data) and not os.path.isdir(data):
            raise ConfigError(f"--data {data} exists and is not a directory")
        check_not_locked(data)


def check_not_locked(data: str) -> None:
    """Fail early, with one line, if another process holds the data directory.

    LevelDB takes a POSIX lock on ``LOCK``; probing it here turns "IO error:
    lock" at start-up into a clear message before twistd daemonises.
    """
    import fcntl

    lock = os.path.join(data, "LOCK")
    if not os.path.exists(lock):
        return
    with open(lock, "a") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"data directory {data} is in use by another process") from None
        fcntl.lockf(f, fcntl.LOCK_UN)


def makeService(options: Any) -> IService:
    """Build (but do not start) the node's services."""
    from ..kv.server import KVServer

    return KVServer.from_options(options)
