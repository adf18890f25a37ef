"""What the command handlers need from the rest of a node, as small types:
each handler takes the objects it uses, never the whole :class:`KVServer`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypedDict, TypeVar, Union, cast

from twisted.internet import defer
from twisted.python.failure import Failure

from ..kv.statemachine import OK, OpError
from ..node.errors import RaftTimeout, RaftUnavailable
from ..raft.types import NotLeader, ProposalDropped, RaftError
from ..resp.commands import CommandError
from ..resp.encoder import Reply, SimpleString

T = TypeVar("T")

Answer: TypeAlias = Union[Reply, "defer.Deferred[Any]"]
"""What a command handler returns: a reply, or a Deferred that fires with one."""

RaftStatus: TypeAlias = Mapping[str, Any]
"""``RawNode.status()``: plain data for INFO and RAFT.INFO."""


class GroupNode(Protocol):
    """The group's Raft node as the command handlers use it (a ``RaftNode``)."""

    @property
    def leader(self) -> int: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def term(self) -> int: ...

    def propose(self, data: bytes) -> defer.Deferred[object]:
        """Replicate ``data`` (a follower forwards it to the leader); fires
        with its apply result."""
        ...

    def propose_local(self, data: bytes) -> defer.Deferred[object]:
        """Append ``data`` on this node, which must be the leader."""
        ...

    def read(self, fn: Callable[[], T]) -> defer.Deferred[T]:
        """``fn()`` once this node's applied state is linearizable (ReadIndex)."""
        ...


class AdminNode(Protocol):
    """Membership, leadership and compaction, for RAFT.* commands."""

    def change_membership(self, kind: int, node_id: int, address: str) -> defer.Deferred[int]: ...

    def transfer_leadership(self, target: int = ...) -> defer.Deferred[int]: ...

    def compact(self, keep: int | None = None) -> defer.Deferred[int]: ...


class NodeStats(Protocol):
    """What INFO shows of the Raft node."""

    stats: dict[str, int]
    wall_clock: Callable[[], float]

    @property
    def is_leader(self) -> bool: ...


class ClientLimits(TypedDict, total=False):
    """Client limits of the RESP listener besides max clients and bulk size
    (``RespServerFactory``'s keywords)."""

    max_request: int
    output_limit: int
    idle_timeout: float


@dataclass(frozen=True)
class NodeSettings:
    """Start-up settings that INFO and CONFIG GET report."""

    resp_address: str
    data_dir: str
    fsync: str
    sharded: bool


def result_reply(result: object) -> Reply:
    """The reply to a write whose apply answered ``result``: an
    :class:`OpError` (or its wire form, from a forwarded write) raises the
    error reply, ``OK`` is ``+OK``."""
    err = result if isinstance(result, OpError) else OpError.from_wire(result)
    if err is not None:
        raise refusal(err)
    if result == OK:
        return SimpleString("OK")
    return cast(Reply, result)  # bytes, int or None


def refusal(err: OpError) -> CommandError:
    """The error reply of a refusal (-MOVED, -TRYAGAIN, -ERR ...)."""
    return CommandError(err.message, code=err.code)


def raft_failure(f: Failure) -> Failure:
    """Errback: a Raft error as the error reply clients expect (-TIMEOUT,
    -CLUSTERDOWN, -ERR); any other failure passes through."""
    e = f.value
    if isinstance(e, CommandError):
        return f
    if isinstance(e, RaftTimeout):
        raise CommandError(str(e), code="TIMEOUT")
    if isinstance(e, (RaftUnavailable, NotLeader, ProposalDropped)):
        raise CommandError(str(e), code="CLUSTERDOWN")
    if isinstance(e, RaftError):
        raise CommandError(str(e))
    if isinstance(e, defer.CancelledError):
        raise CommandError("request cancelled", code="TIMEOUT")
    return f
