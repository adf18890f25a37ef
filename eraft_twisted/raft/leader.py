"""The leader's side of Raft (etcd's stepLeader and tickHeartbeat).

Its step function, what it does with its followers' answers, commits,
leadership transfer, stepping down once its own removal commits, and its
tick (heartbeats and the check-quorum lease).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import lostdata
from .progress import Progress, ProgressState
from .readindex import last_read_ctx, read_ack, release_pending
from .types import (
    NONE,
    ConfChange,
    ConfChangeType,
    Message,
    MessageType,
    ProposalDropped,
    Role,
)

if TYPE_CHECKING:
    from .core import Raft

MT = MessageType


def step_leader(r: Raft, m: Message) -> None:
    """Handle a message as the leader (term checks and votes are done)."""
    t = m.type
    if t == MT.PROPOSE:
        if r.id not in r.prs:
            raise ProposalDropped("this node is being removed from the group")
        if r.lead_transferee != NONE:
            raise ProposalDropped("leadership transfer in progress")
        r.append_entries(list(m.entries))
        r.needs_broadcast = True
        return
    if t == MT.READ_INDEX:
        r._leader_read_index(m)
        return
    if t == MT.TRANSFER_LEADER:
        transfer_leadership(r, m.frm)
        return
    pr = r.prs.get(m.frm)
    if pr is None:
        return
    if t == MT.APPEND_RESP:
        handle_append_resp(r, m, pr)
    elif t == MT.HEARTBEAT_RESP:
        pr.recent_active = True
        pr.paused = False
        # The appends in flight may all be lost: free a slot so that a
        # live follower is probed again instead of starving forever.
        if pr.state == ProgressState.REPLICATE and len(pr.inflights) >= pr.max_inflight:
            pr.inflights.popleft()
        if pr.match < r.log.last_index():
            r.send_append(m.frm)
        if m.context and m.context in r.read_queue:
            read_ack(r, m.frm, m.context)
    elif t == MT.SNAPSHOT_STATUS:
        if pr.state != ProgressState.SNAPSHOT:
            return
        if m.reject:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.paused = True


def handle_append_resp(r: Raft, m: Message, pr: Progress) -> None:
    """A follower accepted (up to ``m.index``) or rejected an append."""
    pr.recent_active = True
    if m.reject and m.reject_hint < pr.match:
        lostdata.suspect(r, m.frm, pr, m.reject_hint)
        return
    if m.reject:
        hint = m.reject_hint
        if m.log_term > 0:
            hint = r.log.find_conflict_by_term(m.reject_hint, m.log_term)
        if pr.maybe_decr_to(m.index, hint):
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            r.send_append(m.frm)
        return
    old_paused = pr.is_paused()
    if not pr.maybe_update(m.index):
        return
    if pr.state == ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
        pr.become_probe()
        pr.become_replicate()
    elif pr.state == ProgressState.REPLICATE:
        pr.free_le(m.index)
    if maybe_commit(r):
        r.bcast_append()
        if r.role != Role.LEADER:
            return
    elif old_paused:
        r.send_append(m.frm)
    while r.send_append(m.frm, send_if_empty=False):
        pass
    if m.frm == r.lead_transferee and pr.match == r.log.last_index():
        r.send(Message(MT.TIMEOUT_NOW, to=m.frm))
    _maybe_promote(r, m.frm, pr)


def _maybe_promote(r: Raft, nid: int, pr: Progress) -> None:
    if (
        r.cfg.auto_promote_learners
        and pr.is_learner
        and pr.match >= r.log.committed
        and r.pending_conf_index <= r.log.committed
        and r.lead_transferee == NONE
        and r.id in r.conf.voters
    ):
        r.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, nid))


def maybe_commit(r: Raft) -> bool:
    """Commit what a quorum of voters holds; True if the commit index moved."""
    matches = sorted((pr.match for nid, pr in r.prs.items() if nid in r.conf.voters), reverse=True)
    if not matches:
        return False
    index = matches[r.quorum() - 1]
    if not r.log.maybe_commit(index, r.term):
        return False
    release_pending(r)
    if r.id not in r.conf.voters and r.conf_index() <= r.log.committed:
        _step_down_removed(r)
    return True


def _step_down_removed(r: Raft) -> None:
    """Our own removal committed: hand off to the most caught-up voter."""
    best = max(
        (nid for nid in r.conf.voters if nid in r.prs),
        key=lambda n: r.prs[n].match,
        default=NONE,
    )
    if best != NONE:
        if r.prs[best].match < r.log.last_index():
            r.send_append(best)
        r.send(Message(MT.TIMEOUT_NOW, to=best))
    r.become_follower(r.term, NONE)


def transfer_leadership(r: Raft, target: int) -> None:
    """Start handing leadership to ``target``: TimeoutNow once it is caught up."""
    if target not in r.conf.voters or target == r.id:
        return
    if r.lead_transferee == target:
        return
    r.election_elapsed = 0
    r.lead_transferee = target
    pr = r.prs[target]
    if pr.match == r.log.last_index():
        r.send(Message(MT.TIMEOUT_NOW, to=target))
    else:
        r.send_append(target)


def tick_heartbeat(r: Raft) -> None:
    """The leader's tick: heartbeats, and stepping down without an active quorum."""
    r.heartbeat_elapsed += 1
    r.election_elapsed += 1
    if r.election_elapsed >= r.cfg.election_tick:
        r.election_elapsed = 0
        if r.cfg.check_quorum and not _quorum_active(r):
            r.become_follower(r.term, NONE)
            return
        if r.lead_transferee != NONE:
            r.lead_transferee = NONE
    if r.role != Role.LEADER:
        return
    if r.heartbeat_elapsed >= r.cfg.heartbeat_tick:
        r.heartbeat_elapsed = 0
        r.bcast_heartbeat(last_read_ctx(r))


def _quorum_active(r: Raft) -> bool:
    active = 0
    for nid, pr in r.prs.items():
        if nid == r.id:
            if nid in r.conf.voters:
                active += 1
            continue
        if pr.recent_active and nid in r.conf.voters:
            active += 1
        pr.recent_active = False
    return active >= r.quorum()
