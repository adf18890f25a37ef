"""The Raft algorithm as a pure state machine: no I/O, no clock, no global random.

Modelled on etcd's raft: messages in through :meth:`Raft.step`, time in
through :meth:`Raft.tick`, and everything to do comes out as ``msgs`` and
the log's unstable/committed entries, collected by
:class:`~eraft_twisted.raft.rawnode.RawNode` into a ``Ready``. This module
holds the state, the term rules common to every role, sending, role changes
and membership; one step function per role lives in :mod:`.leader`,
:mod:`.follower` and :mod:`.election` (the candidate's), reads by read index
in :mod:`.readindex`.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from . import readindex
from .confchange import InvalidConfChange, apply_conf_change, decode_conf_change
from .confchange import encode_conf_change as _encode_cc
from .election import CAMPAIGN_TRANSFER, campaign, handle_vote_request, in_lease, step_candidate
from .follower import step_follower, tick_election
from .leader import maybe_commit, step_leader, tick_heartbeat
from .log import RaftLog
from .progress import Progress, ProgressState
from .storage import Storage
from .types import (
    NONE,
    CompactedError,
    ConfChange,
    ConfChangeInProgress,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    RaftError,
    ReadState,
    Role,
    Snapshot,
)

__all__ = ["CAMPAIGN_TRANSFER", "Config", "Raft"]

MT = MessageType


@dataclass
class Config:
    """Tunables of one Raft node. Times are in ticks."""

    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg: int = 48 * 1024
    max_inflight_msgs: int = 256
    max_committed_size_per_ready: int = 8 * 1024 * 1024
    pre_vote: bool = True
    check_quorum: bool = True
    auto_promote_learners: bool = True
    applied: int = 0
    joining: bool = False
    """Started to join (or rejoin) a group: with an empty log its storage's
    bootstrap membership is not its own, and signs that it lost data are
    expected until the group has added it."""


class Raft:
    """One node's Raft state. Drive it through RawNode."""

    def __init__(self, config: Config, storage: Storage, rng: random.Random) -> None:
        if config.heartbeat_tick <= 0 or config.election_tick <= config.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick > 0")
        self.id = config.id
        self.cfg = config
        self.rng = rng
        self.log = RaftLog(storage)
        hs, initial_conf = storage.initial_state()
        snap = storage.snapshot()
        self.base_conf: ConfState = snap.meta.conf if not snap.is_empty() else initial_conf
        if config.joining and self.log.last_index() == 0:
            self.base_conf = ConfState()
        self.halted = ""
        """Why this node stopped taking part (it lost data); then it does nothing."""
        self.empty_ticks = 0
        """Ticks spent with an empty log and no leader (see lostdata.refuses_vote)."""
        self.conf_log: list[tuple[int, ConfState]] = []
        self.conf = self.base_conf
        self.role = Role.FOLLOWER  # scan_conf looks at the role
        self.scan_conf(self.log.conf_entries())
        self.term = hs.term
        self.vote = hs.vote
        if hs.commit:
            self.log.commit_to(hs.commit)
        if config.applied:
            self.log.applied_to(config.applied)
        self.role = Role.FOLLOWER
        self.leader = NONE
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.prs: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.read_queue: OrderedDict[bytes, readindex.ReadRequest] = OrderedDict()
        self.pending_reads: list[Message] = []
        self.needs_broadcast = False
        self.needs_read_heartbeat = False
        self._step: Callable[[Raft, Message], None] = step_follower
        self.become_follower(self.term, NONE)

    # Reads by read index (readindex.py), as methods so that a test can swap
    # the leader's rule for a broken one.
    _leader_read_index = readindex.leader_read_index
    _answer_read = readindex.answer_read

    # -- membership ----------------------------------------------------
    def scan_conf(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Track the configuration entries among newly appended ``entries``."""
        if not entries:
            return
        first = entries[0].index
        changed = False
        while self.conf_log and self.conf_log[-1][0] >= first:
            self.conf_log.pop()
            changed = True
        for e in entries:
            if e.type == EntryType.CONF_CHANGE:
                self.conf_log.append((e.index, decode_conf_change(e.data)[1]))
                changed = True
        if changed:
            self._set_conf(self.conf_log[-1][1] if self.conf_log else self.base_conf)

    def _set_conf(self, conf: ConfState) -> None:
        self.conf = conf
        if self.role != Role.LEADER:
            return
        last = self.log.last_index()
        members = set(conf.members())
        for nid in list(self.prs):
            if nid not in members:
                del self.prs[nid]
        for nid in members:
            pr = self.prs.get(nid)
            if pr is None:
                pr = Progress(last + 1, self.cfg.max_inflight_msgs)
                pr.recent_active = True
                self.prs[nid] = pr
            pr.is_learner = nid not in conf.voters
        if self.lead_transferee != NONE and self.lead_transferee not in conf.voters:
            self.lead_transferee = NONE

    def conf_at(self, index: int) -> ConfState:
        """The membership in effect at log position ``index``."""
        conf = self.base_conf
        for i, c in self.conf_log:
            if i > index:
                break
            conf = c
        return conf

    def conf_index(self) -> int:
        """Index of the entry that established the current membership."""
        return self.conf_log[-1][0] if self.conf_log else self.log.snapshot().meta.index

    def promotable(self) -> bool:
        """Whether this node may start an election."""
        if self.id in self.conf.voters:
            return True
        # Raft dissertation §4.2.2: a voter whose removal is not committed
        # yet may be needed to elect a leader (its log can be the only one
        # holding the removal), so it campaigns without counting itself.
        ci = self.conf_index()
        return ci > self.log.committed and self.id in self.conf_at(ci - 1).voters

    def quorum(self) -> int:
        return len(self.conf.voters) // 2 + 1

    # -- hard state ----------------------------------------------------
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def halt(self, reason: str) -> None:
        """Stop for good: nothing more is sent, not even what is queued."""
        self.halted = reason
        self.msgs = []
        self.read_states = []

    # -- sending -------------------------------------------------------
    def send(self, m: Message) -> None:
        m.frm = self.id
        if m.type in (MT.VOTE, MT.PREVOTE, MT.VOTE_RESP, MT.PREVOTE_RESP):
            if m.term == 0:
                raise AssertionError(f"term must be set for {m.type.name}")
        elif m.type not in (MT.PROPOSE, MT.READ_INDEX):
            m.term = self.term
        self.msgs.append(m)

    def send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        ents: list[Entry] = []
        compacted = prev < self.log.first_index() - 1
        if not compacted:
            try:
                ents = self.log.entries(pr.next, self.cfg.max_size_per_msg)
            except CompactedError:
                compacted = True
        if compacted:
            if not pr.recent_active:
                return False
            snap = self.log.snapshot()
            if snap.is_empty():
                raise AssertionError("need a snapshot but none is available")
            self.send(Message(MT.SNAPSHOT, to=to, snapshot=snap))
            pr.become_snapshot(snap.meta.index)
            return True
        if not ents and not send_if_empty:
            return False
        self.send(
            Message(
                MT.APPEND,
                to=to,
                index=prev,
                log_term=self.log.term(prev),
                entries=tuple(ents),
                commit=self.log.committed,
            )
        )
        if ents:
            last = ents[-1].index
            if pr.state == ProgressState.REPLICATE:
                pr.optimistic_update(last)
                pr.inflights.append(last)
            elif pr.state == ProgressState.PROBE:
                pr.paused = True
        return True

    def bcast_append(self) -> None:
        for nid in self.prs:
            if nid != self.id:
                self.send_append(nid)

    def bcast_heartbeat(self, ctx: bytes = b"") -> None:
        for nid, pr in self.prs.items():
            if nid != self.id:
                self.send(
                    Message(
                        MT.HEARTBEAT,
                        to=nid,
                        commit=min(pr.match, self.log.committed),
                        context=ctx,
                    )
                )

    def flush_broadcast(self) -> None:
        """Send appends for proposals, and one heartbeat round for the reads,
        batched since the last Ready."""
        if self.needs_broadcast:
            self.needs_broadcast = False
            if self.role == Role.LEADER:
                self.bcast_append()
        if self.needs_read_heartbeat:
            self.needs_read_heartbeat = False
            if self.role == Role.LEADER and self.read_queue:
                # Acks for the newest request confirm every older one too.
                self.bcast_heartbeat(readindex.last_read_ctx(self))

    # -- role changes --------------------------------------------------
    def reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.leader = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_tick + self.rng.randrange(
            self.cfg.election_tick
        )
        self.lead_transferee = NONE
        self.votes = {}
        self.read_queue.clear()
        self.pending_reads = []
        self.needs_broadcast = False
        self.needs_read_heartbeat = False
        last = self.log.last_index()
        self.prs = {}
        for nid in self.conf.members():
            pr = Progress(last + 1, self.cfg.max_inflight_msgs, nid not in self.conf.voters)
            if nid == self.id:
                pr.match = last
            self.prs[nid] = pr

    def become_follower(self, term: int, leader: int) -> None:
        self.reset(term)
        self._step = step_follower
        self.leader = leader
        self.role = Role.FOLLOWER

    def become_pre_candidate(self) -> None:
        if self.role == Role.LEADER:
            raise AssertionError("leader cannot become pre-candidate")
        self._step = step_candidate
        self.votes = {}
        self.leader = NONE
        self.role = Role.PRE_CANDIDATE

    def become_candidate(self) -> None:
        if self.role == Role.LEADER:
            raise AssertionError("leader cannot become candidate")
        self.reset(self.term + 1)
        self._step = step_candidate
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        if self.role == Role.FOLLOWER:
            raise AssertionError("follower cannot become leader")
        self.reset(self.term)
        self._step = step_leader
        self.leader = self.id
        self.role = Role.LEADER
        for pr in self.prs.values():
            pr.recent_active = True
        self.append_entries([Entry(self.term, 0, EntryType.NOOP)])
        # A membership change waits until an entry of this term commits.
        self.pending_conf_index = self.log.last_index()

    # -- elections -------------------------------------------------------
    def hup(self, transfer: bool = False) -> None:
        """Start an election (after TimeoutNow if ``transfer``) if allowed."""
        if self.role == Role.LEADER or not self.promotable():
            return
        if self.cfg.pre_vote and not transfer:
            campaign(self, MT.PREVOTE, b"")
        else:
            campaign(self, MT.VOTE, CAMPAIGN_TRANSFER if transfer else b"")

    # -- time ------------------------------------------------------------
    def tick(self) -> None:
        """Advance logical time by one tick."""
        if self.halted:
            return
        if self.leader == NONE and self.log.last_index() == 0:
            self.empty_ticks += 1
        if self.role == Role.LEADER:
            tick_heartbeat(self)
        else:
            tick_election(self)

    # -- the step function -------------------------------------------------
    def step(self, m: Message) -> None:
        """Process one message (remote, or local with term 0)."""
        if self.halted:
            return
        if m.term == 0:
            pass
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PREVOTE) and in_lease(self, m):
                return
            if m.type == MT.PREVOTE:
                pass
            elif m.type == MT.PREVOTE_RESP and not m.reject:
                pass
            elif m.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT, MT.ACK_CHECK):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if m.type in (MT.HEARTBEAT, MT.APPEND):
                # Tell a stale leader about the newer term so it steps down
                # (always, as in the paper: a member whose term ran ahead while
                # its config is stale may have no other way to reach the leader).
                self.send(Message(MT.APPEND_RESP, to=m.frm))
            elif m.type == MT.PREVOTE:
                self.send(Message(MT.PREVOTE_RESP, to=m.frm, term=self.term, reject=True))
            return

        if m.type in (MT.VOTE, MT.PREVOTE):
            handle_vote_request(self, m)
            return
        self._step(self, m)

    def restore(self, snap: Snapshot) -> bool:
        """Install a snapshot from the leader unless our log already has it."""
        meta = snap.meta
        if meta.index <= self.log.committed:
            return False
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)
            return False
        self.log.restore(snap)
        self.base_conf = meta.conf
        self.conf_log = []
        self._set_conf(meta.conf)
        return True

    # -- proposals ---------------------------------------------------------
    def append_entries(self, ents: list[Entry]) -> int:
        li = self.log.last_index()
        ents = [Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(ents)]
        self.log.append(ents)
        self.scan_conf(ents)
        own = self.prs.get(self.id)
        if own is not None:
            own.maybe_update(self.log.last_index())
        maybe_commit(self)
        return self.log.last_index()

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Append one membership change; it takes effect at once (append-time)."""
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        if self.lead_transferee != NONE:
            raise ProposalDropped("leadership transfer in progress")
        if self.pending_conf_index > self.log.committed:
            raise ConfChangeInProgress("a membership change is still in progress")
        try:
            new_conf = apply_conf_change(self.conf, cc)
        except InvalidConfChange as e:
            raise RaftError(str(e)) from e
        index = self.append_entries(
            [Entry(self.term, 0, EntryType.CONF_CHANGE, _encode_cc(cc, new_conf))]
        )
        self.pending_conf_index = index
        self.needs_broadcast = True
        return index
