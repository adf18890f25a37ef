"""A member that lost what it acknowledged: noticing it, and not trusting it.

A wiped data directory or an old backup makes a member forget entries it
told a leader it had stored; that leader counted them toward commits. Such
a member must neither vote nor acknowledge as if it still had them.

- A member whose log is empty (fresh, or wiped) does not vote for a
  candidate that knows of a commit (vote requests carry the candidate's
  commit index): entries it may have helped commit could be missing from
  that candidate's log, and the members holding them may be on their way
  back (a whole group restarting after a power cut). Until anything
  commits, votes are as usual, so a new group always elects its leaders;
  once it receives entries, it votes as usual too. A fresh member and a
  wiped one look the same, and a member that has been down since the
  group began may be needed for a quorum (a membership change under way,
  an even-sized group), so the refusal only lasts ``EMPTY_VOTE_WAIT``
  election timeouts without a leader: a bounded delay, never a deadlock.
- A follower halts when its leader shows that it acknowledged more than it
  now holds: a heartbeat commit (``min(match, committed)``, as in etcd)
  beyond its last index, or an ``ACK_CHECK`` naming an index it lacks.
- A leader that gets an append rejection whose hint is below the match it
  recorded for that follower stops counting the match, probes again from
  the hint, and sends the follower an ``ACK_CHECK`` (the rejection may also
  be an old one overtaken by later acks: the follower decides).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .types import Message, MessageType

if TYPE_CHECKING:
    from .core import Raft
    from .progress import Progress


EMPTY_VOTE_WAIT = 5
"""Election timeouts an empty, leaderless member refuses candidates that know of a commit."""


def refuses_vote(r: Raft, m: Message) -> bool:
    """Whether an empty log must refuse this (pre-)vote request."""
    waited = r.empty_ticks >= EMPTY_VOTE_WAIT * r.cfg.election_tick
    return r.log.last_index() == 0 and m.commit > 0 and not waited


def check_heartbeat(r: Raft, m: Message) -> bool:
    """True if the heartbeat's commit shows that this node lost acknowledged entries."""
    last = r.log.last_index()
    if m.commit <= last:
        return False
    return _lost(
        r,
        m,
        f"its log ends at {last} but leader {m.frm} (term {m.term}) "
        f"counts entries up to {m.commit} as stored here",
    )


def check_acked(r: Raft, m: Message) -> bool:
    """Handle an ``ACK_CHECK``; True if this node lost what it acknowledged."""
    log = r.log
    if m.index > log.last_index():
        why = f"its log ends at {log.last_index()}"
    elif m.log_term and m.index >= log.first_index() - 1 and log.term(m.index) != m.log_term:
        why = f"its entry {m.index} is of term {log.term(m.index)}, not {m.log_term}"
    else:
        return False
    return _lost(
        r, m, f"{why} but it acknowledged up to {m.index} to leader {m.frm} (term {m.term})"
    )


def _lost(r: Raft, m: Message, detail: str) -> bool:
    if r.cfg.joining and r.id not in r.conf.members():
        # Re-joining after losing its data on purpose: until the group has
        # re-added it, the old leader's view of it is expected to be stale.
        return False
    r.halt(
        f"node {r.id} lost raft log entries it had acknowledged: {detail} "
        "(data directory wiped, or restored from an older copy?)"
    )
    return True


def suspect(r: Raft, nid: int, pr: Progress, hint: int) -> None:
    """Leader: ``nid`` rejected an append with a hint below its recorded match."""
    r.send(Message(MessageType.ACK_CHECK, to=nid, index=pr.match, log_term=r.log.term(pr.match)))
    # Lowering a match only delays commits; counting a lost one would be unsafe.
    pr.match = hint
    pr.become_probe()
    r.send_append(nid)
