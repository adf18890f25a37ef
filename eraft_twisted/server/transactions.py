"""MULTI, EXEC, DISCARD, WATCH and UNWATCH.

Commands after MULTI are queued (``+QUEUED``); an unknown command or a
wrong arity while queueing makes EXEC answer ``-EXECABORT``, as in Redis.
EXEC parses each queued data command (a syntax error becomes that
command's error reply, as Redis's runtime errors do) and proposes all of
them as ONE log entry (``exec``), so they apply atomically and in
isolation on every replica. A transaction of reads only is answered after
the read barrier instead, without a log write.

WATCH reads each key's revision (linearizably, after the barrier); the
``exec`` entry carries them and applies nothing, answering nil, if any
watched key's revision differs by then. Commands that are not data
commands (PING, ECHO, INFO...) are answered in their place in EXEC's
reply, outside the entry. In a sharded group every key of a transaction
(watched ones included) must be in one slot: ``-CROSSSLOT`` otherwise.
"""

from __future__ import annotations

from typing import Any

import msgpack
from twisted.internet import defer

from ..kv.results import OpError
from ..kv.statemachine import KVStateMachine, Op, encode_op, named_ops
from ..resp.commands import CommandError, CommandTable
from ..resp.encoder import NULL_ARRAY, ErrorReply, Reply
from ..resp.state import ConnectionState
from ..resp.transactions import IMMEDIATE, OK, Queue, QueueingTransactions
from .datacmd import DataCommands, Shape
from .seams import Answer, GroupNode, raft_failure, refusal


class Transactions(QueueingTransactions):
    """MULTI/EXEC/DISCARD/WATCH/UNWATCH over a group's data commands."""

    def __init__(
        self, node: GroupNode, sm: KVStateMachine, data: DataCommands, table: CommandTable
    ) -> None:
        self.node = node
        self.sm = sm
        self.data = data
        self.table = table

    def register(self) -> None:
        self.register_commands(self.exec, self.watch)
        self.table.register("eraft.revs", -2, ["readonly", "admin"], self.revs, 1, -1, 1)
        self.table.register("eraft.exec", 2, ["write", "admin"], self.exec_packed, 0, 0, 0)

    def one_slot_only(self) -> bool:
        return self.sm.shards.sharded()

    def watch(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        self.not_in_multi(conn)
        keys = argv[1:]
        self.data.same_slot(keys)

        def read() -> object:
            self.data.check_keys(keys)
            return self.sm.read("revs", [keys])

        def remember(revs: object) -> Reply:
            watched = conn.data.setdefault("watch", {})
            assert isinstance(watched, dict) and isinstance(revs, list)
            for key, rev in zip(keys, revs, strict=True):
                watched.setdefault(key, rev)
            return OK

        return self.node.read(read).addErrback(raft_failure).addCallback(remember)

    # -- for the router ------------------------------------------------------
    def revs(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        """``ERAFT.REVS key...``: the keys' revisions, as WATCH reads them
        (the router keeps them for its client's EXEC)."""
        keys = argv[1:]
        self.data.same_slot(keys)

        def read() -> object:
            self.data.check_keys(keys)
            return self.sm.read("revs", [keys])

        return self.node.read(read).addErrback(raft_failure)

    def exec_packed(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        """``ERAFT.EXEC blob``: a whole transaction from the router, msgpack
        ``[[key, revision, ...], [argv, ...]]``, run as this node's EXEC."""
        try:
            watched_flat, commands = msgpack.unpackb(argv[1], raw=True)
            watched = dict(zip(watched_flat[::2], watched_flat[1::2], strict=True))
        except Exception:
            raise CommandError("malformed transaction") from None
        queue = Queue()
        for args in commands:
            cmd = self.table.resolve(args) if args else None
            if cmd is None or not cmd.arity_ok(len(args)) or cmd.fullname in IMMEDIATE:
                queue.dirty = True
                break
            queue.commands.append((cmd, list(args)))
        return self._exec(queue, watched, conn)

    # -- EXEC ----------------------------------------------------------------
    def exec(self, conn: ConnectionState, argv: list[bytes]) -> Answer:
        queue, watched = self.take(conn)
        return self._exec(queue, watched if isinstance(watched, dict) else {}, conn)

    def _exec(self, queue: Queue, watched: dict[bytes, int], conn: ConnectionState) -> Answer:
        if queue.dirty:
            raise CommandError(
                "Transaction discarded because of previous errors.", code="EXECABORT"
            )
        calls: list[list[object]] = []
        plan: list[tuple[str, Any, Shape | None]] = []
        reads_only = True
        for cmd, args in queue.commands:
            entry = self.data.calls.get(cmd.fullname)
            if entry is None:
                plan.append(("local", (cmd, args), None))
                continue
            parse, shape = entry
            try:
                call = parse(args)
            except CommandError as e:
                plan.append(("error", e.reply, None))
                continue
            if isinstance(call.op, Op) or named_ops(type(self.sm))[call.op][3] == "write":
                reads_only = False
            plan.append(("op", len(calls), shape))
            op: object = int(call.op) if isinstance(call.op, Op) else call.op
            calls.append([op, *call.args])
        flat = [x for key, rev in watched.items() for x in (key, rev)]
        if not calls and not flat:
            d: defer.Deferred[Any] = defer.succeed([])
        elif reads_only:
            d = self.node.read(lambda: self.sm.read("exec", [flat, calls], writes=True))
        else:
            d = self.node.propose(encode_op("exec", self.data.now_ms(), flat, calls))
        d.addErrback(raft_failure)
        return d.addCallback(self._replies, plan, conn)

    def _replies(
        self, results: object, plan: list[tuple[str, Any, Shape | None]], conn: ConnectionState
    ) -> Answer:
        if results is None:
            return NULL_ARRAY  # a watched key changed: nothing applied
        err = results if isinstance(results, OpError) else OpError.from_wire(results)
        if err is not None:
            raise refusal(err)
        assert isinstance(results, list)
        replies: list[defer.Deferred[Any]] = []
        for kind, what, shape in plan:
            if kind == "op":
                replies.append(defer.succeed(_one_reply(results[what], shape, conn)))
            elif kind == "error":
                replies.append(defer.succeed(what))
            else:
                cmd, args = what
                replies.append(defer.maybeDeferred(self.table.dispatch, conn, args))
        gathered = defer.gatherResults(replies, consumeErrors=True)
        return gathered.addCallback(list)


def _one_reply(result: object, shape: Shape | None, conn: ConnectionState) -> Reply:
    err = result if isinstance(result, OpError) else OpError.from_wire(result)
    if err is not None:
        return ErrorReply(str(err))
    if shape is None:
        return result  # type: ignore[return-value]
    try:
        return shape(result, conn)
    except CommandError as e:
        return e.reply
