"""Linearizable reads by read index (Raft dissertation §6.4; etcd's readOnly).

The leader notes its commit index for each request, then checks with one
heartbeat round that it is still the leader; once a quorum acknowledged,
the read may be served at that index. A new leader first waits until an
entry of its own term commits: before, its commit index may be behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .types import NONE, Message, MessageType, ReadState

if TYPE_CHECKING:
    from .core import Raft


class ReadRequest:
    """A read waiting for a quorum to confirm the leader at ``index``."""

    __slots__ = ("index", "frm", "ctx", "acks")

    def __init__(self, index: int, frm: int, ctx: bytes) -> None:
        self.index = index
        self.frm = frm
        self.ctx = ctx
        self.acks: set[int] = set()


def committed_in_term(r: Raft) -> bool:
    """Whether an entry of the leader's own term has committed."""
    return r.log.term(r.log.committed) == r.term


def leader_read_index(r: Raft, m: Message) -> None:
    """Leader: take a read request (own or forwarded by a follower)."""
    if r.conf.voters == (r.id,):
        r._answer_read(m.frm, r.log.committed, m.context)
        return
    if not committed_in_term(r):
        r.pending_reads.append(m)
        return
    req = ReadRequest(r.log.committed, m.frm, m.context)
    req.acks.add(r.id)
    r.read_queue[m.context] = req
    r.needs_read_heartbeat = True


def release_pending(r: Raft) -> None:
    """Leader, after a commit: take the reads that waited for one in its term."""
    if r.pending_reads and committed_in_term(r):
        pending, r.pending_reads = r.pending_reads, []
        for m in pending:
            r._leader_read_index(m)


def read_ack(r: Raft, frm: int, ctx: bytes) -> None:
    """Leader: ``frm`` acknowledged the heartbeat round of request ``ctx``."""
    req = r.read_queue[ctx]
    if frm in r.conf.voters:
        req.acks.add(frm)
    if len(req.acks & set(r.conf.voters)) < r.quorum():
        return
    # A quorum confirmed this request, hence every earlier one too.
    while r.read_queue:
        c, done = r.read_queue.popitem(last=False)
        r._answer_read(done.frm, done.index, done.ctx)
        if c == ctx:
            break


def answer_read(r: Raft, frm: int, index: int, ctx: bytes) -> None:
    """Serve a read at ``index``: here as a ReadState, or back to the follower."""
    if frm in (NONE, r.id):
        r.read_states.append(ReadState(index, ctx))
    else:
        r.send(Message(MessageType.READ_INDEX_RESP, to=frm, index=index, context=ctx))


def last_read_ctx(r: Raft) -> bytes:
    """The newest waiting request: acks for it confirm every older one too."""
    return next(reversed(r.read_queue)) if r.read_queue else b""
