"""Encoding of membership-change entries, and applying a change to a ConfState.

A conf-change entry carries the change *and* the resulting membership, so
the configuration in effect at any log position is simply the one in the
last conf-change entry at or before it (Raft dissertation §4.1: a server
uses the latest configuration in its log, committed or not).
"""

from __future__ import annotations

import struct

from .types import ConfChange, ConfChangeType, ConfState

_HEAD = struct.Struct(">BqI")
_COUNT = struct.Struct(">I")


def _ids(ids: tuple[int, ...]) -> bytes:
    return _COUNT.pack(len(ids)) + struct.pack(f">{len(ids)}q", *ids)


def encode_conf_change(cc: ConfChange, result: ConfState) -> bytes:
    """Serialise a change and the membership it produces."""
    return (
        _HEAD.pack(int(cc.type), cc.node_id, len(cc.context))
        + cc.context
        + _ids(result.voters)
        + _ids(result.learners)
    )


def decode_conf_change(data: bytes) -> tuple[ConfChange, ConfState]:
    """Inverse of :func:`encode_conf_change`."""
    kind, node_id, ctx_len = _HEAD.unpack_from(data, 0)
    pos = _HEAD.size
    ctx = bytes(data[pos : pos + ctx_len])
    pos += ctx_len
    groups: list[tuple[int, ...]] = []
    for _ in range(2):
        (n,) = _COUNT.unpack_from(data, pos)
        pos += _COUNT.size
        groups.append(tuple(struct.unpack_from(f">{n}q", data, pos)))
        pos += 8 * n
    return ConfChange(ConfChangeType(kind), node_id, ctx), ConfState(groups[0], groups[1])


class InvalidConfChange(ValueError):
    """The change makes no sense against the current membership."""


def apply_conf_change(conf: ConfState, cc: ConfChange) -> ConfState:
    """The membership after ``cc``; raises InvalidConfChange if it is a no-op
    or would leave the group without voters."""
    voters = set(conf.voters)
    learners = set(conf.learners)
    nid = cc.node_id
    if cc.type == ConfChangeType.ADD_LEARNER:
        if nid in voters:
            raise InvalidConfChange(f"node {nid} is already a voter")
        if nid in learners:
            raise InvalidConfChange(f"node {nid} is already a learner")
        learners.add(nid)
    elif cc.type == ConfChangeType.ADD_VOTER:
        if nid in voters:
            raise InvalidConfChange(f"node {nid} is already a voter")
        learners.discard(nid)
        voters.add(nid)
    else:
        if nid not in voters and nid not in learners:
            raise InvalidConfChange(f"node {nid} is not a member")
        voters.discard(nid)
        learners.discard(nid)
        if not voters:
            raise InvalidConfChange("cannot remove the last voter")
    return ConfState(tuple(sorted(voters)), tuple(sorted(learners)))
