"""MULTI/EXEC/DISCARD/WATCH/UNWATCH through the router.

The router keeps its client's queue and watched revisions itself; EXEC
sends the whole transaction, in one request (``ERAFT.EXEC``), to the group
owning its slot, which runs it as one log entry. Every key of a
transaction, watched ones included, must be in one slot (``-CROSSSLOT``
otherwise, as Redis Cluster answers): one group applies it atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack
from twisted.internet import defer

from ..hashslot import key_hash_slot
from ..resp.client import ReplyError, RespReply
from ..resp.commands import Command, CommandError, CommandTable
from ..resp.encoder import NULL_ARRAY, ErrorReply, Reply, SimpleString
from ..resp.state import ConnectionState
from .keyed import KEYED, command_keys
from .router import Router

QUEUED = SimpleString("QUEUED")
OK = SimpleString("OK")
IMMEDIATE = frozenset({"exec", "discard", "multi", "watch", "quit", "reset"})


def _crossslot() -> CommandError:
    return CommandError("Keys in request don't hash to the same slot", code="CROSSSLOT")


@dataclass
class _Watched:
    revs: dict[bytes, int] = field(default_factory=dict)
    slot: int | None = None


@dataclass
class _Transaction:
    commands: list[list[bytes]] = field(default_factory=list)
    dirty: bool = False
    slot: int | None = None


class RouterTransactions:
    """The router's transaction commands (see the module docstring)."""

    def __init__(self, router: Router, table: CommandTable) -> None:
        self.router = router
        self.table = table

    def register(self) -> None:
        t = self.table
        t.register("multi", 1, ["fast"], self.multi, 0, 0, 0, group="transactions")
        t.register("exec", 1, [], self.exec, 0, 0, 0, group="transactions")
        t.register("discard", 1, ["fast"], self.discard, 0, 0, 0, group="transactions")
        t.register("watch", -2, ["fast"], self.watch, 1, -1, 1, group="transactions")
        t.register("unwatch", 1, ["fast"], self.unwatch, 0, 0, 0, group="transactions")
        t.interceptor = self

    @staticmethod
    def _keys(cmd: Command, argv: list[bytes]) -> list[bytes]:
        if cmd.name in KEYED:
            return command_keys(cmd.name, argv)
        return cmd.keys(argv)

    @staticmethod
    def _slot_of(keys: list[bytes], slot: int | None) -> int | None:
        """The one slot of ``keys`` and ``slot``; CROSSSLOT if there are two."""
        for key in keys:
            s = key_hash_slot(key)
            if slot is None:
                slot = s
            elif s != slot:
                raise _crossslot()
        return slot

    def intercept(
        self,
        conn: ConnectionState,
        cmd: Command | None,
        argv: list[bytes],
        error: ErrorReply | None,
    ) -> object | None:
        tx = conn.data.get("multi")
        if not isinstance(tx, _Transaction):
            return None
        if cmd is None:
            tx.dirty = True
            return None
        if cmd.fullname in IMMEDIATE:
            return None
        try:
            tx.slot = self._slot_of(self._keys(cmd, argv), tx.slot)
        except CommandError as e:
            tx.dirty = True
            return e.reply
        tx.commands.append(argv)
        return QUEUED

    def multi(self, conn: ConnectionState, argv: list[bytes]) -> Reply:
        if "multi" in conn.data:
            raise CommandError("MULTI calls can not be nested")
        conn.data["multi"] = _Transaction()
        return OK

    def discard(self, conn: ConnectionState, argv: list[bytes]) -> Reply:
        if conn.data.pop("multi", None) is None:
            raise CommandError("DISCARD without MULTI")
        conn.data.pop("watch", None)
        return OK

    def unwatch(self, conn: ConnectionState, argv: list[bytes]) -> Reply:
        conn.data.pop("watch", None)
        return OK

    def watch(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[Reply]:
        if "multi" in conn.data:
            raise CommandError("WATCH inside MULTI is not allowed")
        keys = argv[1:]
        watched = conn.data.get("watch")
        known = watched if isinstance(watched, _Watched) else _Watched()
        slot = self._slot_of(keys, known.slot)
        assert slot is not None

        def remember(revs: RespReply) -> Reply:
            if not isinstance(revs, list):
                raise CommandError(f"unexpected ERAFT.REVS reply {revs!r:.100}")
            state = conn.data.setdefault("watch", known)
            assert isinstance(state, _Watched)
            state.slot = slot
            for key, rev in zip(keys, revs, strict=True):
                state.revs.setdefault(key, int(rev))  # type: ignore[arg-type]
            return OK

        d = self.router.call_slot(slot, [b"ERAFT.REVS", *keys])
        return d.addCallback(remember)

    def exec(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[Any] | Reply:
        tx = conn.data.pop("multi", None)
        watched = conn.data.pop("watch", None)
        if not isinstance(tx, _Transaction):
            raise CommandError("EXEC without MULTI")
        if tx.dirty:
            raise CommandError(
                "Transaction discarded because of previous errors.", code="EXECABORT"
            )
        flat: list[Any] = []
        slot = tx.slot
        if isinstance(watched, _Watched):
            flat = [x for key, rev in watched.revs.items() for x in (key, rev)]
            if slot is None:
                slot = watched.slot
            elif watched.slot is not None and watched.slot != slot:
                raise _crossslot()
        if slot is None:
            slot = 0  # no key at all: any group can answer it
        blob = msgpack.packb([flat, tx.commands], use_bin_type=True)
        d = self.router.call_slot(slot, [b"ERAFT.EXEC", blob], conn.protocol_version)
        return d.addCallback(_relay)


def _relay(reply: RespReply) -> Reply:
    """A group's EXEC reply as this router answers it."""
    if reply is None or reply is NULL_ARRAY:
        return NULL_ARRAY
    if isinstance(reply, list):
        return [ErrorReply(str(r)) if isinstance(r, ReplyError) else r for r in reply]
    return reply  # type: ignore[return-value]
