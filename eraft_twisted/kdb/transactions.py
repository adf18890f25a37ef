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

from ..resp.client import ReplyError, RespReply
from ..resp.commands import Command, CommandError, CommandTable
from ..resp.encoder import NULL_ARRAY, ErrorReply, Reply
from ..resp.state import ConnectionState
from ..resp.transactions import OK, QueueingTransactions, crossslot, one_slot
from .keyed import KEYED, command_keys
from .router import Router


@dataclass
class _Watched:
    revs: dict[bytes, int] = field(default_factory=dict)
    slot: int | None = None


class RouterTransactions(QueueingTransactions):
    """The router's transaction commands (see the module docstring)."""

    def __init__(self, router: Router, table: CommandTable) -> None:
        self.router = router
        self.table = table

    def register(self) -> None:
        self.register_commands(self.exec, self.watch)

    def keys_of(self, cmd: Command, argv: list[bytes]) -> list[bytes]:
        if cmd.name in KEYED:
            return command_keys(cmd.name, argv)
        return cmd.keys(argv)

    def watch(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[Reply]:
        self.not_in_multi(conn)
        keys = argv[1:]
        watched = conn.data.get("watch")
        known = watched if isinstance(watched, _Watched) else _Watched()
        slot = one_slot(keys, known.slot)
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
        tx, watched = self.take(conn)
        flat: list[Any] = []
        slot = tx.slot
        if isinstance(watched, _Watched):
            flat = [x for key, rev in watched.revs.items() for x in (key, rev)]
            if slot is None:
                slot = watched.slot
            elif watched.slot is not None and watched.slot != slot:
                raise crossslot()
        if slot is None:
            slot = 0  # no key at all: any group can answer it
        commands = [argv for _, argv in tx.commands]
        blob = msgpack.packb([flat, commands], use_bin_type=True)
        d = self.router.call_slot(slot, [b"ERAFT.EXEC", blob], conn.protocol_version)
        return d.addCallback(_relay)


def _relay(reply: RespReply) -> Reply:
    """A group's EXEC reply as this router answers it."""
    if reply is None or reply is NULL_ARRAY:
        return NULL_ARRAY
    if isinstance(reply, list):
        return [ErrorReply(str(r)) if isinstance(r, ReplyError) else r for r in reply]
    return reply  # type: ignore[return-value]
