"""Data commands declared as *parse -> operation -> reply*.

A command's handler here does three things: ``parse(argv)`` checks the
arguments and names the state machine operation to run (an
:class:`OpCall`, or a :class:`CommandError` for bad syntax); the operation
runs, through the log for a write or after the ReadIndex barrier for a
read (the same ``op_<name>`` method either way, see
:mod:`eraft_twisted.kv.collection`); ``shape(result, conn)`` turns its
result into the reply (RESP2 and RESP3 forms). Declared this way, a
command can later be queued by MULTI and run inside EXEC's one entry.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from ..hashslot import key_hash_slot
from ..kv.results import OK, OpError, Result
from ..kv.statemachine import KVStateMachine, Op, encode_op, named_ops
from ..resp.commands import Command, CommandError, CommandTable
from ..resp.encoder import Reply, SimpleString
from ..resp.state import ConnectionState
from .seams import Answer, GroupNode, raft_failure, refusal


@dataclass(frozen=True)
class OpCall:
    """The state machine operation a command runs: ``op`` (an ``op_<name>``
    of the state machine) with ``args`` (keys first, as its keys spec says)."""

    op: str | Op
    args: tuple[object, ...]


Parse = Callable[[list[bytes]], OpCall]
Shape = Callable[[Any, ConnectionState], Reply]


def plain(result: Any, conn: ConnectionState) -> Reply:
    """The result as it is: bytes, int, None, lists of them; ``OK`` as +OK."""
    if result == OK:
        return SimpleString("OK")
    return result  # type: ignore[no-any-return]


def as_map(result: Any, conn: ConnectionState) -> Reply:
    """A flat ``[field, value, ...]`` list as a map (RESP3 ``%``; RESP2 the flat array)."""
    if result is None:
        return None
    return {result[i]: result[i + 1] for i in range(0, len(result) - 1, 2)}


def as_set(result: Any, conn: ConnectionState) -> Reply:
    """A list of distinct members as a set (RESP3 ``~``; RESP2 an array)."""
    if conn.protocol_version == 3 and isinstance(result, list):
        return set(result)
    return result  # type: ignore[no-any-return]


def as_bool(result: Any, conn: ConnectionState) -> Reply:
    """0/1 as an integer (what Redis 7 answers in both protocols)."""
    return int(result)


def numkeys_at(at: int) -> Callable[[list[bytes]], list[bytes]]:
    """The keys of a command whose key count is ``argv[at]`` (the keys
    follow it; any argument before it from 1 on is a key too, such as
    ZUNIONSTORE's destination). A bad count finds no keys: the command's
    own parse answers the error."""

    def find(argv: list[bytes]) -> list[bytes]:
        try:
            count = int(argv[at])
        except (ValueError, IndexError):
            return []
        if count <= 0 or at + count >= len(argv):
            return []
        return argv[1:at] + argv[at + 1 : at + 1 + count]

    return find


def seed() -> int:
    """A random seed a proposer puts into an operation that chooses at
    random (SPOP, SRANDMEMBER...): every replica then chooses the same."""
    return random.getrandbits(63)


def _plain_result(result: object) -> Result:
    err = result if isinstance(result, OpError) else OpError.from_wire(result)
    if err is not None:
        raise refusal(err)
    return result  # type: ignore[return-value]


class DataCommands:
    """Registers declared data commands and runs them on a group's node."""

    def __init__(self, node: GroupNode, sm: KVStateMachine, clock: IReactorTime) -> None:
        self.node = node
        self.sm = sm
        self.clock = clock
        self.calls: dict[str, tuple[Parse, Shape]] = {}
        """Command name -> (parse, shape): what MULTI needs to queue it."""

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def add(
        self,
        table: CommandTable,
        name: str,
        arity: int,
        parse: Parse,
        shape: Shape = plain,
        *,
        first_key: int = 1,
        last_key: int = 1,
        step: int = 1,
        flags: tuple[str, ...] = (),
        group: str = "generic",
        summary: str = "",
        since: str = "1.0.0",
        complexity: str = "",
        write: bool | None = None,
        keys: Callable[[list[bytes]], list[bytes]] | None = None,
    ) -> Command:
        """Register ``name``: whether it writes is the kind of the operation
        its parse names (declare ``write`` when parse may name either);
        ``keys`` finds the keys of a command whose keys follow a count."""
        self.calls[name] = (parse, shape)
        if write is None:
            kind = self._kind_flag(name)
        else:
            kind = "write" if write else "readonly"
        holder: list[Command] = []

        def handler(conn: ConnectionState, argv: list[bytes]) -> Answer:
            return self.run(holder[0], parse(argv), shape, conn, argv)

        cmd = table.register(
            name,
            arity,
            (kind, *flags),
            handler,
            first_key,
            last_key,
            step,
            group=group,
            summary=summary,
            since=since,
            complexity=complexity,
        )
        cmd.key_finder = keys
        holder.append(cmd)
        return cmd

    def _kind_flag(self, name: str) -> str:
        spec = named_ops(type(self.sm)).get(name)
        return "write" if spec is None or spec[3] == "write" else "readonly"

    def run(
        self,
        cmd: Command,
        call: OpCall,
        shape: Shape,
        conn: ConnectionState,
        argv: list[bytes],
    ) -> Answer:
        """Run ``call`` (parsed from ``argv`` of ``cmd``) and shape its result."""
        if isinstance(call.op, Op):
            writes = True
        else:
            spec = named_ops(type(self.sm)).get(call.op)
            if spec is None:
                raise CommandError(f"no operation {call.op!r}")
            writes = spec[3] == "write"
        keys = cmd.keys(argv)
        if len(keys) > 1:
            self.same_slot(keys)
        if writes:
            d = self.node.propose(encode_op(call.op, self.now_ms(), *call.args))
            return d.addCallbacks(_plain_result, raft_failure).addCallback(shape, conn)

        op = str(call.op)

        def read() -> Result:
            self.check_keys(keys)
            return _plain_result(self.sm.read(op, list(call.args)))

        d2: defer.Deferred[Result] = self.node.read(read)
        return d2.addErrback(raft_failure).addCallback(shape, conn)

    def same_slot(self, keys: list[bytes]) -> None:
        if self.sm.shards.sharded() and len({key_hash_slot(k) for k in keys}) > 1:
            raise CommandError("Keys in request don't hash to the same slot", code="CROSSSLOT")

    def check_keys(self, keys: list[bytes]) -> None:
        shards = self.sm.shards
        if not shards.sharded():
            return
        for key in keys:
            refused = shards.check_key(key)
            if refused is not None:
                raise refusal(refused)
