"""The follower's side of Raft (etcd's stepFollower and tickElection).

Its step function, what it does with the leader's appends, heartbeats
and snapshots (a candidate that hears from a leader does the same after
stepping down), and its election timer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import lostdata
from .types import NONE, Message, MessageType, NotLeader, ReadState

if TYPE_CHECKING:
    from .core import Raft

MT = MessageType


def step_follower(r: Raft, m: Message) -> None:
    """Handle a message as a follower (term checks and votes are done)."""
    t = m.type
    if t == MT.PROPOSE:
        raise NotLeader(r.leader)
    if t == MT.APPEND:
        r.election_elapsed = 0
        r.leader = m.frm
        handle_append(r, m)
    elif t == MT.HEARTBEAT:
        r.election_elapsed = 0
        r.leader = m.frm
        handle_heartbeat(r, m)
    elif t == MT.SNAPSHOT:
        r.election_elapsed = 0
        r.leader = m.frm
        handle_snapshot(r, m)
    elif t == MT.ACK_CHECK:
        r.election_elapsed = 0
        r.leader = m.frm
        lostdata.check_acked(r, m)
    elif t == MT.TIMEOUT_NOW:
        if r.promotable():
            r.hup(transfer=True)
    elif t == MT.READ_INDEX:
        if m.frm != r.id:
            return  # forwarded to us while we were leader; the requester retries
        if r.leader == NONE:
            raise NotLeader(NONE)
        r.send(Message(MT.READ_INDEX, to=r.leader, context=m.context))
    elif t == MT.READ_INDEX_RESP:
        r.read_states.append(ReadState(m.index, m.context))
    elif t == MT.TRANSFER_LEADER:
        raise NotLeader(r.leader)


def handle_append(r: Raft, m: Message) -> None:
    """Append the leader's entries if our log matches at ``m.index``, and answer."""
    if m.index < r.log.committed:
        r.send(Message(MT.APPEND_RESP, to=m.frm, index=r.log.committed))
        return
    res = r.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
    if res is not None:
        last, written = res
        # Only what was written: a stale or duplicate append that is a
        # prefix of our log must not forget a later conf entry.
        r.scan_conf(written)
        r.send(Message(MT.APPEND_RESP, to=m.frm, index=last))
        return
    hint = min(m.index, r.log.last_index())
    hint = r.log.find_conflict_by_term(hint, m.log_term)
    r.send(
        Message(
            MT.APPEND_RESP,
            to=m.frm,
            index=m.index,
            reject=True,
            reject_hint=hint,
            log_term=r.log.term(hint),
        )
    )


def handle_heartbeat(r: Raft, m: Message) -> None:
    """Advance the commit index as the leader says, and answer."""
    if lostdata.check_heartbeat(r, m):
        return
    r.log.commit_to(min(m.commit, r.log.last_index()))
    r.send(Message(MT.HEARTBEAT_RESP, to=m.frm, context=m.context))


def handle_snapshot(r: Raft, m: Message) -> None:
    """Install the leader's snapshot unless our log has it, and answer."""
    assert m.snapshot is not None
    if r.restore(m.snapshot):
        r.send(Message(MT.APPEND_RESP, to=m.frm, index=r.log.last_index()))
    else:
        r.send(Message(MT.APPEND_RESP, to=m.frm, index=r.log.committed))


def tick_election(r: Raft) -> None:
    """A follower's (or candidate's) tick: campaign once the election timeout passed."""
    r.election_elapsed += 1
    if r.promotable() and r.election_elapsed >= r.randomized_election_timeout:
        r.election_elapsed = 0
        r.hup()
