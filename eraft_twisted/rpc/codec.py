"""Wire encoding of Raft messages (msgpack), shared by every peer link."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from ..raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)


def _entry(e: Entry) -> list[int | bytes]:
    return [e.term, e.index, int(e.type), e.data]


def _snapshot(s: Snapshot | None) -> list[int | list[int] | bytes] | None:
    if s is None:
        return None
    m = s.meta
    return [m.index, m.term, list(m.conf.voters), list(m.conf.learners), s.data]


def message_to_list(m: Message) -> list[object]:
    """A Message as plain msgpack-able data."""
    return [
        int(m.type),
        m.to,
        m.frm,
        m.term,
        m.log_term,
        m.index,
        [_entry(e) for e in m.entries],
        m.commit,
        m.reject,
        m.reject_hint,
        _snapshot(m.snapshot),
        m.context,
    ]


def message_from_list(v: Sequence[Any]) -> Message:
    """Inverse of :func:`message_to_list`; raises ValueError on garbage."""
    try:
        (kind, to, frm, term, log_term, index, ents, commit, reject, hint, snap, ctx) = v
        snapshot = None
        if snap is not None:
            si, st, voters, learners, data = snap
            snapshot = Snapshot(
                SnapshotMeta(si, st, ConfState(tuple(voters), tuple(learners))), data
            )
        return Message(
            MessageType(kind),
            to=to,
            frm=frm,
            term=term,
            log_term=log_term,
            index=index,
            entries=tuple(Entry(t, i, EntryType(k), d) for t, i, k, d in ents),
            commit=commit,
            reject=bool(reject),
            reject_hint=hint,
            snapshot=snapshot,
            context=ctx,
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"malformed raft message: {e}") from e


def encode_messages(msgs: list[Message]) -> bytes:
    """Pack a batch of messages for one peer."""
    return msgpack.packb([message_to_list(m) for m in msgs], use_bin_type=True)


def decode_messages(data: bytes) -> list[Message]:
    """Unpack a batch; raises ValueError on a malformed payload."""
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True)
    except Exception as e:
        raise ValueError(f"malformed raft message batch: {e}") from e
    if not isinstance(raw, list):
        raise ValueError("malformed raft message batch: not a list")
    return [message_from_list(v) for v in raw]


def encode_result(result: object) -> bytes:
    """Pack a state machine result (bytes, str, int, None, list; a value with
    a ``to_wire()`` method, such as the KV state machine's ``OpError``, as
    what that returns: the layers above own their result types)."""
    return msgpack.packb(result, use_bin_type=True, default=_to_wire)


def _to_wire(value: object) -> object:
    to_wire = getattr(value, "to_wire", None)
    if to_wire is None:
        raise TypeError(f"cannot encode a {type(value).__name__} result")
    return to_wire()


def decode_result(data: bytes) -> Any:
    """Inverse of :func:`encode_result`."""
    return msgpack.unpackb(data, raw=False)
