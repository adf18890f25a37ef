"""RAFT.* admin commands over RESP, in the style of RedisRaft."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Mapping
from typing import NoReturn

from twisted.internet import defer
from twisted.python.failure import Failure

from ..net import parse_address
from ..raft.types import NONE, ConfChangeType
from ..resp.commands import CommandError, CommandTable
from ..resp.encoder import SimpleString
from ..resp.state import ConnectionState
from .seams import AdminNode, NodeSettings, raft_failure


def _node_id(raw: bytes) -> int:
    try:
        nid = int(raw)
    except ValueError:
        raise CommandError(f"invalid node id '{raw.decode('latin-1')}'") from None
    if not 0 <= nid < 2**31:
        raise CommandError("node id must be between 0 and 2147483647")
    return nid


class RaftAdmin:
    """RAFT.NODE ADD|REMOVE, RAFT.TRANSFER_LEADER, RAFT.SNAPSHOT."""

    def __init__(self, node: AdminNode) -> None:
        self.raft = node

    def register(self, table: CommandTable) -> None:
        table.register("raft.node", -3, ["admin"], self.node, 0, 0, 0)
        table.register("raft.transfer_leader", -1, ["admin"], self.transfer, 0, 0, 0)
        table.register("raft.snapshot", 1, ["admin"], self.snapshot, 0, 0, 0)

    @staticmethod
    def _errors(d: defer.Deferred[int]) -> defer.Deferred[SimpleString]:
        def failed(f: Failure) -> Failure:
            if isinstance(f.value, CommandError):
                return f
            raft_failure(f)  # raises for the Raft errors it knows
            raise CommandError(str(f.value))

        return d.addCallback(lambda _: SimpleString("OK")).addErrback(failed)

    def node(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[SimpleString]:
        sub = argv[1].upper()
        node = self.raft
        if sub == b"ADD":
            if len(argv) != 4:
                raise CommandError("wrong number of arguments for 'raft.node|add' command")
            nid = _node_id(argv[2])
            address = argv[3].decode("latin-1")
            try:
                parse_address(address)
            except ValueError as e:
                raise CommandError(str(e)) from None
            d = node.change_membership(int(ConfChangeType.ADD_LEARNER), nid, address)
            d.addErrback(self._already_member)
        elif sub == b"REMOVE":
            if len(argv) != 3:
                raise CommandError("wrong number of arguments for 'raft.node|remove' command")
            d = node.change_membership(int(ConfChangeType.REMOVE), _node_id(argv[2]), "")
        else:
            raise CommandError(
                f"unknown subcommand '{argv[1].decode('latin-1')}'. Try RAFT.NODE ADD|REMOVE."
            )
        return self._errors(d)

    @staticmethod
    def _already_member(f: Failure) -> Failure:
        if "already a" in str(f.value):
            raise CommandError(
                f"{f.value} (a member that lost its data rejoins by restarting with --join)"
            )
        return f

    def transfer(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[SimpleString]:
        if len(argv) > 2:
            raise CommandError("wrong number of arguments for 'raft.transfer_leader' command")
        target = _node_id(argv[1]) if len(argv) == 2 else NONE
        return self._errors(self.raft.transfer_leadership(target))

    def snapshot(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[SimpleString]:
        return self._errors(self.raft.compact(keep=0))


class ConfigCommands:
    """CONFIG GET over the node's actual settings (what redis-benchmark and
    client libraries ask for); CONFIG SET is refused: every setting is a
    start-up option, and the group's members must agree on them."""

    def __init__(
        self, settings: NodeSettings, client_settings: Callable[[], Mapping[str, str]]
    ) -> None:
        self.node_settings = settings
        self.client_settings = client_settings
        """The RESP listener's limits as it applies them (maxclients, timeout, ...)."""

    def register(self, table: CommandTable) -> None:
        table.register("config", -2, ["admin"], None, 0, 0, 0)
        sub = table.register_subcommand
        sub("config", "get", -3, ["admin", "stale"], self.get)
        sub("config", "set", -4, ["admin"], self.set)
        sub("config", "resetstat", 2, ["admin"], lambda conn, argv: SimpleString("OK"))

    def settings(self) -> dict[str, str]:
        """Redis's name for each setting, with this node's value."""
        s = self.node_settings
        host, port = parse_address(s.resp_address)
        return {
            "bind": host,
            "port": str(port),
            "dir": os.path.abspath(s.data_dir),
            "databases": "1",
            "appendonly": "yes",  # every write is in the Raft log
            "appendfsync": "always" if s.fsync == "always" else "no",
            "save": "",
            **self.client_settings(),
            "maxmemory": "0",
            "maxmemory-policy": "noeviction",
            "cluster-enabled": "yes" if s.sharded else "no",
        }

    def get(self, conn: ConnectionState, argv: list[bytes]) -> dict[str, str]:
        found: dict[str, str] = {}
        settings = self.settings()
        for raw in argv[2:]:
            pattern = raw.decode("latin-1").lower()
            for name in fnmatch.filter(settings, pattern):
                found[name] = settings[name]
        return found

    def set(self, conn: ConnectionState, argv: list[bytes]) -> NoReturn:
        name = argv[2].decode("latin-1")
        raise CommandError(
            f"CONFIG SET is not supported ('{name}'): restart the node with the option "
            "or its config file"
        )
