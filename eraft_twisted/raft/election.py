"""Elections (etcd's campaign, poll and stepCandidate).

Campaigning (a pre-vote round first, unless transferring leadership),
counting votes, deciding whether to grant one, and the step function of a
(pre-)candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import lostdata
from .follower import handle_append, handle_heartbeat, handle_snapshot
from .types import NONE, Message, MessageType, NotLeader, Role

if TYPE_CHECKING:
    from .core import Raft

MT = MessageType

CAMPAIGN_TRANSFER = b"transfer"
"""Context of vote requests sent after TimeoutNow: they bypass the leader lease."""


def campaign(r: Raft, kind: MessageType, ctx: bytes) -> None:
    """Become a (pre-)candidate and ask every other voter for its vote."""
    if kind == MT.PREVOTE:
        r.become_pre_candidate()
        term = r.term + 1
        resp = MT.PREVOTE_RESP
    else:
        r.become_candidate()
        term = r.term
        resp = MT.VOTE_RESP
    if poll(r, r.id, resp, True) == 1:
        if kind == MT.PREVOTE:
            campaign(r, MT.VOTE, ctx)
        else:
            r.become_leader()
        return
    for nid in r.conf.voters:
        if nid != r.id:
            r.send(
                Message(
                    kind,
                    to=nid,
                    term=term,
                    index=r.log.last_index(),
                    log_term=r.log.last_term(),
                    commit=r.log.committed,
                    context=ctx,
                )
            )


def poll(r: Raft, nid: int, kind: MessageType, granted: bool) -> int:
    """Record a vote; 1 = won, -1 = lost, 0 = pending."""
    voters = r.conf.voters
    if nid in voters:
        r.votes.setdefault(nid, granted)
    yes = sum(1 for v, g in r.votes.items() if g and v in voters)
    no = sum(1 for v, g in r.votes.items() if not g and v in voters)
    q = r.quorum()
    if yes >= q:
        return 1
    if no > len(voters) - q:
        return -1
    return 0


def in_lease(r: Raft, m: Message) -> bool:
    """Whether a (pre-)vote request of a higher term is ignored: this node
    heard from a leader within the election timeout (check quorum)."""
    return (
        m.context != CAMPAIGN_TRANSFER
        and r.cfg.check_quorum
        and r.leader != NONE
        and r.election_elapsed < r.cfg.election_tick
    )


def handle_vote_request(r: Raft, m: Message) -> None:
    """Grant or refuse a (pre-)vote whose term is not below ours."""
    can_vote = (
        r.vote == m.frm
        or (r.vote == NONE and r.leader == NONE)
        or (m.type == MT.PREVOTE and m.term > r.term)
    )
    resp = MT.VOTE_RESP if m.type == MT.VOTE else MT.PREVOTE_RESP
    if can_vote and r.log.is_up_to_date(m.index, m.log_term) and not lostdata.refuses_vote(r, m):
        r.send(Message(resp, to=m.frm, term=m.term))
        if m.type == MT.VOTE:
            r.election_elapsed = 0
            r.vote = m.frm
    elif r.term:  # an empty node at term 0 has no term to tell
        r.send(Message(resp, to=m.frm, term=r.term, reject=True))


def step_candidate(r: Raft, m: Message) -> None:
    """Handle a message as a candidate or pre-candidate."""
    t = m.type
    if t == MT.PROPOSE:
        raise NotLeader(NONE)
    if t == MT.APPEND:
        r.become_follower(m.term, m.frm)
        handle_append(r, m)
    elif t == MT.HEARTBEAT:
        r.become_follower(m.term, m.frm)
        handle_heartbeat(r, m)
    elif t == MT.SNAPSHOT:
        r.become_follower(m.term, m.frm)
        handle_snapshot(r, m)
    elif t == MT.ACK_CHECK:
        r.become_follower(m.term, m.frm)
        lostdata.check_acked(r, m)
    elif (t == MT.PREVOTE_RESP and r.role == Role.PRE_CANDIDATE) or (
        t == MT.VOTE_RESP and r.role == Role.CANDIDATE
    ):
        result = poll(r, m.frm, t, not m.reject)
        if result == 1:
            if r.role == Role.PRE_CANDIDATE:
                campaign(r, MT.VOTE, b"")
            else:
                r.become_leader()
                r.bcast_append()
        elif result == -1:
            r.become_follower(r.term, NONE)
    elif t == MT.READ_INDEX and m.frm != r.id:
        return  # forwarded to us while we were leader; the requester retries
    elif t in (MT.READ_INDEX, MT.TRANSFER_LEADER):
        raise NotLeader(NONE)
