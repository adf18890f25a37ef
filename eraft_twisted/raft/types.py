"""Plain data types shared by the Raft core and everything that drives it.

Nothing here does I/O. Node ids are small non-negative integers (the
index of a server in the ``--peers`` list, or an id given at join time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

NONE = -1
"""The id used for "no node" (no vote cast, no known leader)."""


class EntryType(IntEnum):
    """What a log entry carries."""

    NORMAL = 0
    CONF_CHANGE = 1
    NOOP = 2


class ConfChangeType(IntEnum):
    """One-at-a-time membership changes."""

    ADD_LEARNER = 0
    ADD_VOTER = 1
    REMOVE = 2


class MessageType(IntEnum):
    """Every message Raft peers exchange."""

    VOTE = 1
    VOTE_RESP = 2
    PREVOTE = 3
    PREVOTE_RESP = 4
    APPEND = 5
    APPEND_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8
    SNAPSHOT = 9
    TIMEOUT_NOW = 10
    READ_INDEX = 11
    READ_INDEX_RESP = 12
    TRANSFER_LEADER = 13
    PROPOSE = 14
    SNAPSHOT_STATUS = 15
    ACK_CHECK = 16
    """Leader to follower: "you acknowledged up to ``index`` (of ``log_term``)";
    a follower whose log no longer holds that lost its data and must stop."""


class Role(IntEnum):
    """The role a node plays in its group."""

    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3

    def label(self) -> str:
        """Lower-case name used in INFO output."""
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry."""

    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Approximate wire size, used for flow control."""
        return len(self.data) + 24


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before a message that depends on it is sent."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """Group membership: voters and non-voting learners."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()

    def members(self) -> tuple[int, ...]:
        """Every node that receives the log."""
        return tuple(sorted(set(self.voters) | set(self.learners)))


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single membership change; ``context`` carries e.g. the address."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where a snapshot sits in the log and the membership at that point."""

    index: int = 0
    term: int = 0
    conf: ConfState = ConfState()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot: its metadata and an opaque payload for the state machine.

    The payload is whatever the application put there; the core never
    looks inside. A real node streams big payloads separately and only
    passes a handle here.
    """

    meta: SnapshotMeta = SnapshotMeta()
    data: bytes = b""

    def is_empty(self) -> bool:
        """True for the "no snapshot" value."""
        return self.meta.index == 0


@dataclass(slots=True)
class Message:
    """A Raft message between two nodes (or a local one, for PROPOSE)."""

    type: MessageType
    to: int = NONE
    frm: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read request that may be answered once ``index`` is applied."""

    index: int
    request_ctx: bytes


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the driver may want to show or react to."""

    leader: int
    role: Role


@dataclass(slots=True)
class Ready:
    """Everything the driver must do, in order, before calling ``advance``.

    1. persist ``snapshot`` (if any), ``entries`` and ``hard_state`` (if
       any) -- durably when ``must_sync`` is true;
    2. send ``messages``;
    3. apply ``committed_entries`` to the state machine;
    4. serve ``read_states`` once their index has been applied;
    5. call ``advance(ready)``.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    must_sync: bool = False


class RaftError(Exception):
    """Base class of errors the core reports to callers."""


class NotLeader(RaftError):
    """The node is not the leader; ``leader`` is its best guess or NONE."""

    def __init__(self, leader: int) -> None:
        super().__init__(f"not leader (leader hint: {leader})")
        self.leader = leader


class ProposalDropped(RaftError):
    """The proposal cannot be accepted right now (e.g. leader transfer)."""


class CompactedError(RaftError):
    """The requested index was compacted away into a snapshot."""


class UnavailableError(RaftError):
    """The requested index is beyond the end of the log."""


class ConfChangeInProgress(RaftError):
    """Another membership change is not applied yet."""
