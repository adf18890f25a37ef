"""What MULTI/EXEC look like to a client, wherever EXEC runs: MULTI,
DISCARD, UNWATCH, queueing commands with ``+QUEUED`` (an unknown command
or a wrong arity marks the transaction for ``-EXECABORT``), and the rule
that all keys of a transaction share one hash slot where that is required.
A node and the router each say how EXEC and WATCH run."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..hashslot import key_hash_slot
from .commands import Command, CommandError, CommandTable, Handler
from .encoder import ErrorReply, Reply, SimpleString
from .state import ConnectionState

QUEUED = SimpleString("QUEUED")
OK = SimpleString("OK")
IMMEDIATE = frozenset({"exec", "discard", "multi", "watch", "quit", "reset"})
"""Commands that run at once even inside MULTI."""


def crossslot() -> CommandError:
    return CommandError("Keys in request don't hash to the same slot", code="CROSSSLOT")


@dataclass
class Queue:
    """The commands queued since MULTI on one connection."""

    commands: list[tuple[Command, list[bytes]]] = field(default_factory=list)
    dirty: bool = False
    """An unknown command, a wrong arity or CROSSSLOT while queueing."""
    slot: int | None = None


def one_slot(keys: list[bytes], slot: int | None) -> int | None:
    """The one slot of ``keys`` and ``slot``; CROSSSLOT if there are two."""
    for key in keys:
        s = key_hash_slot(key)
        if slot is None:
            slot = s
        elif s != slot:
            raise crossslot()
    return slot


class QueueingTransactions:
    """MULTI, DISCARD, UNWATCH and the queue; subclasses run EXEC and WATCH."""

    table: CommandTable

    def one_slot_only(self) -> bool:
        """Whether every key of a transaction must be in one slot."""
        return True

    def keys_of(self, cmd: Command, argv: list[bytes]) -> list[bytes]:
        return cmd.keys(argv)

    def register_commands(self, exec_: Handler, watch: Handler) -> None:
        t = self.table
        g = {"group": "transactions"}
        t.register("multi", 1, ["fast"], self.multi, 0, 0, 0, **g)
        t.register("exec", 1, [], exec_, 0, 0, 0, **g)
        t.register("discard", 1, ["fast"], self.discard, 0, 0, 0, **g)
        t.register("watch", -2, ["fast"], watch, 1, -1, 1, **g)
        t.register("unwatch", 1, ["fast"], self.unwatch, 0, 0, 0, **g)
        t.interceptor = self

    def intercept(
        self,
        conn: ConnectionState,
        cmd: Command | None,
        argv: list[bytes],
        error: ErrorReply | None,
    ) -> object | None:
        queue = conn.data.get("multi")
        if not isinstance(queue, Queue):
            return None
        if cmd is None:
            queue.dirty = True
            return None
        if cmd.fullname in IMMEDIATE:
            return None
        if self.one_slot_only():
            try:
                queue.slot = one_slot(self.keys_of(cmd, argv), queue.slot)
            except CommandError as e:
                queue.dirty = True
                return e.reply
        queue.commands.append((cmd, argv))
        return QUEUED

    def multi(self, conn: ConnectionState, argv: list[bytes]) -> Reply:
        if "multi" in conn.data:
            raise CommandError("MULTI calls can not be nested")
        conn.data["multi"] = Queue()
        return OK

    def discard(self, conn: ConnectionState, argv: list[bytes]) -> Reply:
        if conn.data.pop("multi", None) is None:
            raise CommandError("DISCARD without MULTI")
        conn.data.pop("watch", None)
        return OK

    def unwatch(self, conn: ConnectionState, argv: list[bytes]) -> Reply:
        conn.data.pop("watch", None)
        return OK

    @staticmethod
    def not_in_multi(conn: ConnectionState) -> None:
        if "multi" in conn.data:
            raise CommandError("WATCH inside MULTI is not allowed")

    @staticmethod
    def take(conn: ConnectionState) -> tuple[Queue, object]:
        """EXEC's queue and whatever WATCH left, both forgotten; the errors
        of an EXEC without MULTI or after a queueing error."""
        queue = conn.data.pop("multi", None)
        watched = conn.data.pop("watch", None)
        if not isinstance(queue, Queue):
            raise CommandError("EXEC without MULTI")
        if queue.dirty:
            raise CommandError(
                "Transaction discarded because of previous errors.", code="EXECABORT"
            )
        return queue, watched
