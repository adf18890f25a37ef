"""RawNode: the driver-facing API of the Raft core (tick/step/ready/advance)."""

from __future__ import annotations

import random

from .core import Config, Raft
from .storage import Storage
from .types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    Role,
    SoftState,
)

_LOCAL = {
    MessageType.PROPOSE,
    MessageType.READ_INDEX,
    MessageType.TRANSFER_LEADER,
    MessageType.SNAPSHOT_STATUS,
}


class RawNode:
    """A Raft node with no I/O. The caller owns time, the network and disks.

    Typical loop: feed ``tick()`` and ``step()``; when ``has_ready()``, take
    ``ready()``, persist/send/apply what it holds, then ``advance(rd)``.
    Only one Ready may be outstanding at a time.
    """

    def __init__(self, config: Config, storage: Storage, rng: random.Random) -> None:
        self.raft = Raft(config, storage, rng)
        self._prev_soft = self._soft_state()
        self._prev_hard = self.raft.hard_state()
        self._outstanding = False

    # -- inputs ----------------------------------------------------------
    def tick(self) -> None:
        """Advance logical time by one tick."""
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (used by tests and single-node bootstrap)."""
        self.raft.hup()

    def step(self, m: Message) -> None:
        """Deliver a message received from a peer."""
        # A READ_INDEX from a peer is a follower's read forwarded to us.
        if m.type in _LOCAL and not (m.type == MessageType.READ_INDEX and m.frm != self.raft.id):
            raise ValueError(f"{m.type.name} is a local message; use the RawNode method")
        if m.frm not in self.raft.prs and m.type in (
            MessageType.APPEND_RESP,
            MessageType.HEARTBEAT_RESP,
        ):
            return
        self.raft.step(m)

    def propose(self, data: bytes) -> int:
        """Append ``data`` on the leader; returns its log index.

        Raises NotLeader (with a leader hint) or ProposalDropped. The entry
        is only committed when it later shows up in ``committed_entries``
        with the same index and term ``self.raft.term``.
        """
        self.raft.step(
            Message(
                MessageType.PROPOSE,
                frm=self.raft.id,
                entries=(Entry(0, 0, EntryType.NORMAL, data),),
            )
        )
        return self.raft.log.last_index()

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Append a membership change on the leader; returns its log index."""
        return self.raft.propose_conf_change(cc)

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read point; answered as a ReadState with ``ctx``.

        ``ctx`` must be unique among outstanding reads.
        """
        self.raft.step(Message(MessageType.READ_INDEX, frm=self.raft.id, context=ctx))

    def transfer_leader(self, target: int) -> None:
        """Hand leadership to ``target`` (TimeoutNow once it is caught up)."""
        self.raft.step(Message(MessageType.TRANSFER_LEADER, frm=target))

    def report_unreachable(self, nid: int) -> None:
        """The transport failed to deliver to ``nid``: stop pipelining to it."""
        pr = self.raft.prs.get(nid)
        if self.raft.role == Role.LEADER and pr is not None and pr.state.name == "REPLICATE":
            pr.become_probe()

    def report_snapshot(self, nid: int, ok: bool) -> None:
        """The transport finished (or failed) sending a snapshot to ``nid``."""
        if self.raft.role == Role.LEADER:
            self.raft.step(Message(MessageType.SNAPSHOT_STATUS, frm=nid, reject=not ok))

    # -- outputs -----------------------------------------------------------
    def _soft_state(self) -> SoftState:
        return SoftState(self.raft.leader, self.raft.role)

    def has_ready(self) -> bool:
        """Whether there is anything to persist, send or apply."""
        r = self.raft
        r.flush_broadcast()
        if self._outstanding or r.halted:
            return False
        return bool(
            r.msgs
            or r.read_states
            or r.log.unstable.entries
            or r.log.unstable.snapshot is not None
            or r.log.has_next_committed_entries()
            or self._soft_state() != self._prev_soft
            or r.hard_state() != self._prev_hard
        )

    def ready(self) -> Ready:
        """Collect the work to do; call ``advance`` with it once done."""
        r = self.raft
        r.flush_broadcast()
        rd = Ready(
            entries=r.log.unstable_entries(),
            snapshot=r.log.unstable.snapshot,
            committed_entries=r.log.next_committed_entries(r.cfg.max_committed_size_per_ready),
            messages=r.msgs,
            read_states=r.read_states,
        )
        r.msgs = []
        r.read_states = []
        soft = self._soft_state()
        if soft != self._prev_soft:
            rd.soft_state = soft
            self._prev_soft = soft
        hard = r.hard_state()
        if hard != self._prev_hard:
            rd.hard_state = hard
        rd.must_sync = bool(
            rd.entries
            or rd.snapshot is not None
            or hard.term != self._prev_hard.term
            or hard.vote != self._prev_hard.vote
        )
        self._prev_hard = hard
        self._outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """Everything in ``rd`` is persisted, sent and applied."""
        log = self.raft.log
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)
        elif rd.snapshot is not None and rd.snapshot.meta.index > log.applied:
            log.applied_to(rd.snapshot.meta.index)
        self._outstanding = False

    # -- introspection -------------------------------------------------------
    @property
    def id(self) -> int:
        return self.raft.id

    @property
    def halted(self) -> str:
        """Non-empty (the reason) once this node found it lost data: stop it."""
        return self.raft.halted

    @property
    def role(self) -> Role:
        return self.raft.role

    @property
    def leader(self) -> int:
        return self.raft.leader

    @property
    def term(self) -> int:
        return self.raft.term

    @property
    def conf(self) -> ConfState:
        return self.raft.conf

    def conf_at(self, index: int) -> ConfState:
        """Membership in effect at ``index`` (for snapshot metadata)."""
        return self.raft.conf_at(index)

    def hard_state(self) -> HardState:
        return self.raft.hard_state()

    def status(self) -> dict[str, object]:
        """A plain-data summary for INFO / RAFT.INFO."""
        r = self.raft
        progress = (
            {
                nid: {
                    "match": pr.match,
                    "next": pr.next,
                    "state": pr.state.name.lower(),
                    "learner": pr.is_learner,
                }
                for nid, pr in r.prs.items()
            }
            if r.role == Role.LEADER
            else {}
        )
        return {
            "id": r.id,
            "role": r.role.label(),
            "term": r.term,
            "vote": r.vote,
            "leader": r.leader,
            "commit_index": r.log.committed,
            "applied_index": r.log.applied,
            "first_index": r.log.first_index(),
            "last_index": r.log.last_index(),
            "voters": list(r.conf.voters),
            "learners": list(r.conf.learners),
            "lead_transferee": r.lead_transferee,
            "progress": progress,
        }


__all__ = ["RawNode", "Config", "NONE"]
