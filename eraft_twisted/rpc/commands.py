"""AMP commands between peers of one Raft group.

AMP caps every value at 65535 bytes; :class:`ChunkedBytes` spreads one
logical value over as many keys as it needs (``name``, ``name.1``, ...),
so a 16 MiB entry still travels as one command.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from twisted.protocols import amp

AMP_VALUE_LIMIT = 0xFFFF
CHUNK = 0xFFFF


class ChunkedBytes(amp.Argument):
    """A bytes argument of any size, split over numbered keys."""

    def toBox(
        self,
        name: bytes,
        strings: MutableMapping[bytes, bytes],
        objects: Mapping[str, Any],
        proto: object,
    ) -> None:
        value: bytes = objects[name.decode("ascii")]
        strings[name] = value[:CHUNK]
        n = 1
        for off in range(CHUNK, len(value), CHUNK):
            strings[name + b"." + str(n).encode()] = value[off : off + CHUNK]
            n += 1

    def fromBox(
        self,
        name: bytes,
        strings: Mapping[bytes, bytes],
        objects: MutableMapping[str, object],
        proto: object,
    ) -> None:
        parts = [strings[name]]
        n = 1
        while True:
            key = name + b"." + str(n).encode()
            if key not in strings:
                break
            parts.append(strings[key])
            n += 1
        objects[name.decode("ascii")] = b"".join(parts)


class WrongGroup(Exception):
    """The other side belongs to another Raft group or cluster: link refused."""


class NotIdentified(Exception):
    """The receiver does not know its own group id yet; try again shortly."""


REFUSED: dict[type[Exception], bytes] = {WrongGroup: b"WRONG_GROUP"}
"""Declared on every command, so a refusal is an answer, not a dropped link."""


class NotLeaderError(Exception):
    """Raised remotely when a forwarded proposal reached a non-leader."""


class LeaderUnreachable(Exception):
    """The forward was not even sent: no link to the leader."""


class ProposalFailed(Exception):
    """Raised remotely when a forwarded proposal did not commit."""


class RaftMessages(amp.Command):
    """One-way delivery of a batch of Raft messages (msgpack)."""

    arguments = [(b"payload", ChunkedBytes())]
    response = []  # type: ignore[var-annotated]
    requiresAnswer = False


class Propose(amp.Command):
    """Forward a client write to the leader; answers with the applied result."""

    arguments = [(b"data", ChunkedBytes())]
    response = [(b"result", ChunkedBytes())]
    errors = {NotLeaderError: b"NOT_LEADER", ProposalFailed: b"PROPOSAL_FAILED", **REFUSED}


class SnapshotRejected(Exception):
    """The receiver refused a snapshot stream (superseded, or busy installing)."""


class SnapshotOpen(amp.Command):
    """Start streaming a snapshot to a follower; answers with a stream id."""

    arguments = [(b"sender", amp.Integer()), (b"term", amp.Integer()), (b"meta", amp.String())]
    response = [(b"stream", amp.Integer())]
    errors = {SnapshotRejected: b"SNAPSHOT_REJECTED", **REFUSED}


class SnapshotChunk(amp.Command):
    """One chunk of ``(key, value)`` items; answered once staged on disk, so
    the sender is paced by the receiver's writes."""

    arguments = [(b"stream", amp.Integer()), (b"items", ChunkedBytes())]
    response = []  # type: ignore[var-annotated]
    errors = {SnapshotRejected: b"SNAPSHOT_REJECTED", **REFUSED}


class SnapshotEnd(amp.Command):
    """All items sent: the receiver hands the snapshot to its Raft core."""

    arguments = [(b"stream", amp.Integer())]
    response = []  # type: ignore[var-annotated]
    errors = {SnapshotRejected: b"SNAPSHOT_REJECTED", **REFUSED}


class ChangeMembership(amp.Command):
    """Ask the leader to add a learner / voter or remove a member."""

    arguments = [
        (b"kind", amp.Integer()),
        (b"node_id", amp.Integer()),
        (b"address", amp.Unicode()),
    ]
    response = [(b"index", amp.Integer())]
    errors = {NotLeaderError: b"NOT_LEADER", ProposalFailed: b"PROPOSAL_FAILED", **REFUSED}


class TransferLeader(amp.Command):
    """Ask the leader to hand leadership to ``target`` (-1: best follower)."""

    arguments = [(b"target", amp.Integer())]
    response = [(b"leader", amp.Integer())]
    errors = {NotLeaderError: b"NOT_LEADER", ProposalFailed: b"PROPOSAL_FAILED", **REFUSED}


class MetaError(Exception):
    """The meta group refused a request (bad input, unknown group...)."""


class MetaQuery(amp.Command):
    """Config ``num`` (-1: the latest) from the meta group, as msgpack; empty
    if there is no such config yet."""

    arguments = [(b"num", amp.Integer())]
    response = [(b"config", ChunkedBytes())]
    errors = {MetaError: b"META_ERROR", ProposalFailed: b"PROPOSAL_FAILED", **REFUSED}


class MetaJoin(amp.Command):
    """Register a shard group's servers (client-facing RESP addresses)."""

    arguments = [(b"group", amp.Integer()), (b"servers", amp.ListOf(amp.Unicode()))]
    response = [(b"num", amp.Integer())]
    errors = {MetaError: b"META_ERROR", ProposalFailed: b"PROPOSAL_FAILED", **REFUSED}


class Identify(amp.Command):
    """The first command on every link: who is calling (``purpose`` "peer":
    a member of the same Raft group; "client": a kv node or router asking
    the meta group). Ids are "" while unknown. Answers with the receiver's."""

    arguments = [
        (b"purpose", amp.Unicode()),
        (b"kind", amp.Unicode()),
        (b"node", amp.Integer()),
        (b"group", amp.Unicode()),
        (b"cluster", amp.Unicode()),
    ]
    response = [
        (b"kind", amp.Unicode()),
        (b"node", amp.Integer()),
        (b"group", amp.Unicode()),
        (b"cluster", amp.Unicode()),
    ]
    errors = {WrongGroup: b"WRONG_GROUP", NotIdentified: b"NOT_IDENTIFIED"}
