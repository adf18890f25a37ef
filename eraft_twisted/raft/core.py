"""The Raft algorithm as a pure state machine: no I/O, no clock, no global random.

Modelled on etcd's raft: messages in through :meth:`Raft.step`, time in
through :meth:`Raft.tick`, and everything to do comes out as ``msgs`` and
the log's unstable/committed entries, collected by
:class:`~eraft_twisted.raft.rawnode.RawNode` into a ``Ready``. One step
function per role.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from . import lostdata
from .confchange import InvalidConfChange, apply_conf_change, decode_conf_change
from .confchange import encode_conf_change as _encode_cc
from .log import RaftLog
from .progress import Progress, ProgressState
from .storage import Storage
from .types import (
    NONE,
    CompactedError,
    ConfChange,
    ConfChangeInProgress,
    ConfChangeType,
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

CAMPAIGN_TRANSFER = b"transfer"
"""Context of vote requests sent after TimeoutNow: they bypass the leader lease."""

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


class _ReadRequest:
    __slots__ = ("index", "frm", "ctx", "acks")

    def __init__(self, index: int, frm: int, ctx: bytes) -> None:
        self.index = index
        self.frm = frm
        self.ctx = ctx
        self.acks: set[int] = set()


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
        self.role = Role.FOLLOWER  # _scan_conf looks at the role
        self._scan_conf(self.log.conf_entries())
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
        self.read_queue: OrderedDict[bytes, _ReadRequest] = OrderedDict()
        self.pending_reads: list[Message] = []
        self.needs_broadcast = False
        self.needs_read_heartbeat = False
        self._step: Callable[[Message], None] = self._step_follower
        self.become_follower(self.term, NONE)

    # -- membership ----------------------------------------------------
    def _scan_conf(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
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
                self.bcast_heartbeat(self._last_read_ctx())

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
        self._step = self._step_follower
        self.leader = leader
        self.role = Role.FOLLOWER

    def become_pre_candidate(self) -> None:
        if self.role == Role.LEADER:
            raise AssertionError("leader cannot become pre-candidate")
        self._step = self._step_candidate
        self.votes = {}
        self.leader = NONE
        self.role = Role.PRE_CANDIDATE

    def become_candidate(self) -> None:
        if self.role == Role.LEADER:
            raise AssertionError("leader cannot become candidate")
        self.reset(self.term + 1)
        self._step = self._step_candidate
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        if self.role == Role.FOLLOWER:
            raise AssertionError("follower cannot become leader")
        self.reset(self.term)
        self._step = self._step_leader
        self.leader = self.id
        self.role = Role.LEADER
        for pr in self.prs.values():
            pr.recent_active = True
        self.append_entries([Entry(self.term, 0, EntryType.NOOP)])
        # A membership change waits until an entry of this term commits.
        self.pending_conf_index = self.log.last_index()

    # -- elections -------------------------------------------------------
    def hup(self, transfer: bool = False) -> None:
        if self.role == Role.LEADER or not self.promotable():
            return
        if self.cfg.pre_vote and not transfer:
            self.campaign(MT.PREVOTE, b"")
        else:
            self.campaign(MT.VOTE, CAMPAIGN_TRANSFER if transfer else b"")

    def campaign(self, kind: MessageType, ctx: bytes) -> None:
        if kind == MT.PREVOTE:
            self.become_pre_candidate()
            term = self.term + 1
            resp = MT.PREVOTE_RESP
        else:
            self.become_candidate()
            term = self.term
            resp = MT.VOTE_RESP
        if self.poll(self.id, resp, True) == 1:
            if kind == MT.PREVOTE:
                self.campaign(MT.VOTE, ctx)
            else:
                self.become_leader()
            return
        for nid in self.conf.voters:
            if nid != self.id:
                self.send(
                    Message(
                        kind,
                        to=nid,
                        term=term,
                        index=self.log.last_index(),
                        log_term=self.log.last_term(),
                        commit=self.log.committed,
                        context=ctx,
                    )
                )

    def poll(self, nid: int, kind: MessageType, granted: bool) -> int:
        """Record a vote; 1 = won, -1 = lost, 0 = pending."""
        if nid in self.conf.voters:
            self.votes.setdefault(nid, granted)
        yes = sum(1 for v, g in self.votes.items() if g and v in self.conf.voters)
        no = sum(1 for v, g in self.votes.items() if not g and v in self.conf.voters)
        q = self.quorum()
        if yes >= q:
            return 1
        if no > len(self.conf.voters) - q:
            return -1
        return 0

    # -- time ------------------------------------------------------------
    def tick(self) -> None:
        if self.halted:
            return
        if self.leader == NONE and self.log.last_index() == 0:
            self.empty_ticks += 1
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.hup()

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum and not self._quorum_active():
                self.become_follower(self.term, NONE)
                return
            if self.lead_transferee != NONE:
                self.lead_transferee = NONE
        if self.role != Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self.bcast_heartbeat(self._last_read_ctx())

    def _quorum_active(self) -> bool:
        active = 0
        for nid, pr in self.prs.items():
            if nid == self.id:
                if nid in self.conf.voters:
                    active += 1
                continue
            if pr.recent_active and nid in self.conf.voters:
                active += 1
            pr.recent_active = False
        return active >= self.quorum()

    def _last_read_ctx(self) -> bytes:
        return next(reversed(self.read_queue)) if self.read_queue else b""

    # -- the step function -------------------------------------------------
    def step(self, m: Message) -> None:
        """Process one message (remote, or local with term 0)."""
        if self.halted:
            return
        if m.term == 0:
            pass
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PREVOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.cfg.check_quorum
                    and self.leader != NONE
                    and self.election_elapsed < self.cfg.election_tick
                )
                if not force and in_lease:
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
            can_vote = (
                self.vote == m.frm
                or (self.vote == NONE and self.leader == NONE)
                or (m.type == MT.PREVOTE and m.term > self.term)
            )
            resp = MT.VOTE_RESP if m.type == MT.VOTE else MT.PREVOTE_RESP
            if (
                can_vote
                and self.log.is_up_to_date(m.index, m.log_term)
                and not lostdata.refuses_vote(self, m)
            ):
                self.send(Message(resp, to=m.frm, term=m.term))
                if m.type == MT.VOTE:
                    self.election_elapsed = 0
                    self.vote = m.frm
            elif self.term:  # an empty node at term 0 has no term to tell
                self.send(Message(resp, to=m.frm, term=self.term, reject=True))
            return
        self._step(m)

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.PROPOSE:
            if self.id not in self.prs:
                raise ProposalDropped("this node is being removed from the group")
            if self.lead_transferee != NONE:
                raise ProposalDropped("leadership transfer in progress")
            self.append_entries(list(m.entries))
            self.needs_broadcast = True
            return
        if t == MT.READ_INDEX:
            self._leader_read_index(m)
            return
        if t == MT.TRANSFER_LEADER:
            self._leader_transfer(m.frm)
            return
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        if t == MT.APPEND_RESP:
            self._handle_append_resp(m, pr)
        elif t == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.paused = False
            # The appends in flight may all be lost: free a slot so that a
            # live follower is probed again instead of starving forever.
            if pr.state == ProgressState.REPLICATE and len(pr.inflights) >= pr.max_inflight:
                pr.inflights.popleft()
            if pr.match < self.log.last_index():
                self.send_append(m.frm)
            if m.context and m.context in self.read_queue:
                self._read_ack(m.frm, m.context)
        elif t == MT.SNAPSHOT_STATUS:
            if pr.state != ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            pr.paused = True

    def _handle_append_resp(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject and m.reject_hint < pr.match:
            lostdata.suspect(self, m.frm, pr, m.reject_hint)
            return
        if m.reject:
            hint = m.reject_hint
            if m.log_term > 0:
                hint = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self.send_append(m.frm)
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
        if self.maybe_commit():
            self.bcast_append()
            if self.role != Role.LEADER:
                return
        elif old_paused:
            self.send_append(m.frm)
        while self.send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self.send(Message(MT.TIMEOUT_NOW, to=m.frm))
        self._maybe_promote(m.frm, pr)

    def _maybe_promote(self, nid: int, pr: Progress) -> None:
        if (
            self.cfg.auto_promote_learners
            and pr.is_learner
            and pr.match >= self.log.committed
            and self.pending_conf_index <= self.log.committed
            and self.lead_transferee == NONE
            and self.id in self.conf.voters
        ):
            self.propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, nid))

    def maybe_commit(self) -> bool:
        matches = sorted(
            (pr.match for nid, pr in self.prs.items() if nid in self.conf.voters), reverse=True
        )
        if not matches:
            return False
        index = matches[self.quorum() - 1]
        if not self.log.maybe_commit(index, self.term):
            return False
        if self.pending_reads and self._committed_in_term():
            pending, self.pending_reads = self.pending_reads, []
            for rm in pending:
                self._leader_read_index(rm)
        if self.id not in self.conf.voters and self.conf_index() <= self.log.committed:
            self._step_down_removed()
        return True

    def _step_down_removed(self) -> None:
        """Our own removal committed: hand off to the most caught-up voter."""
        best = max(
            (nid for nid in self.conf.voters if nid in self.prs),
            key=lambda n: self.prs[n].match,
            default=NONE,
        )
        if best != NONE:
            if self.prs[best].match < self.log.last_index():
                self.send_append(best)
            self.send(Message(MT.TIMEOUT_NOW, to=best))
        self.become_follower(self.term, NONE)

    def _committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _leader_read_index(self, m: Message) -> None:
        if self.conf.voters == (self.id,):
            self._answer_read(m.frm, self.log.committed, m.context)
            return
        if not self._committed_in_term():
            self.pending_reads.append(m)
            return
        req = _ReadRequest(self.log.committed, m.frm, m.context)
        req.acks.add(self.id)
        self.read_queue[m.context] = req
        self.needs_read_heartbeat = True

    def _read_ack(self, frm: int, ctx: bytes) -> None:
        req = self.read_queue[ctx]
        if frm in self.conf.voters:
            req.acks.add(frm)
        if len(req.acks & set(self.conf.voters)) < self.quorum():
            return
        # A quorum confirmed this request, hence every earlier one too.
        while self.read_queue:
            c, r = self.read_queue.popitem(last=False)
            self._answer_read(r.frm, r.index, r.ctx)
            if c == ctx:
                break

    def _answer_read(self, frm: int, index: int, ctx: bytes) -> None:
        if frm in (NONE, self.id):
            self.read_states.append(ReadState(index, ctx))
        else:
            self.send(Message(MT.READ_INDEX_RESP, to=frm, index=index, context=ctx))

    def _leader_transfer(self, target: int) -> None:
        if target not in self.conf.voters or target == self.id:
            return
        if self.lead_transferee == target:
            return
        self.election_elapsed = 0
        self.lead_transferee = target
        pr = self.prs[target]
        if pr.match == self.log.last_index():
            self.send(Message(MT.TIMEOUT_NOW, to=target))
        else:
            self.send_append(target)

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t == MT.PROPOSE:
            raise NotLeader(NONE)
        if t == MT.APPEND:
            self.become_follower(m.term, m.frm)
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self.become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif t == MT.SNAPSHOT:
            self.become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif t == MT.ACK_CHECK:
            self.become_follower(m.term, m.frm)
            lostdata.check_acked(self, m)
        elif (t == MT.PREVOTE_RESP and self.role == Role.PRE_CANDIDATE) or (
            t == MT.VOTE_RESP and self.role == Role.CANDIDATE
        ):
            result = self.poll(m.frm, t, not m.reject)
            if result == 1:
                if self.role == Role.PRE_CANDIDATE:
                    self.campaign(MT.VOTE, b"")
                else:
                    self.become_leader()
                    self.bcast_append()
            elif result == -1:
                self.become_follower(self.term, NONE)
        elif t == MT.READ_INDEX and m.frm != self.id:
            return  # forwarded to us while we were leader; the requester retries
        elif t in (MT.READ_INDEX, MT.TRANSFER_LEADER):
            raise NotLeader(NONE)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MT.PROPOSE:
            raise NotLeader(self.leader)
        if t == MT.APPEND:
            self.election_elapsed = 0
            self.leader = m.frm
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.leader = m.frm
            self._handle_heartbeat(m)
        elif t == MT.SNAPSHOT:
            self.election_elapsed = 0
            self.leader = m.frm
            self._handle_snapshot(m)
        elif t == MT.ACK_CHECK:
            self.election_elapsed = 0
            self.leader = m.frm
            lostdata.check_acked(self, m)
        elif t == MT.TIMEOUT_NOW:
            if self.promotable():
                self.hup(transfer=True)
        elif t == MT.READ_INDEX:
            if m.frm != self.id:
                return  # forwarded to us while we were leader; the requester retries
            if self.leader == NONE:
                raise NotLeader(NONE)
            self.send(Message(MT.READ_INDEX, to=self.leader, context=m.context))
        elif t == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))
        elif t == MT.TRANSFER_LEADER:
            raise NotLeader(self.leader)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self.send(Message(MT.APPEND_RESP, to=m.frm, index=self.log.committed))
            return
        res = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if res is not None:
            last, written = res
            # Only what was written: a stale or duplicate append that is a
            # prefix of our log must not forget a later conf entry.
            self._scan_conf(written)
            self.send(Message(MT.APPEND_RESP, to=m.frm, index=last))
            return
        hint = min(m.index, self.log.last_index())
        hint = self.log.find_conflict_by_term(hint, m.log_term)
        self.send(
            Message(
                MT.APPEND_RESP,
                to=m.frm,
                index=m.index,
                reject=True,
                reject_hint=hint,
                log_term=self.log.term(hint),
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        if lostdata.check_heartbeat(self, m):
            return
        self.log.commit_to(min(m.commit, self.log.last_index()))
        self.send(Message(MT.HEARTBEAT_RESP, to=m.frm, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        if self.restore(m.snapshot):
            self.send(Message(MT.APPEND_RESP, to=m.frm, index=self.log.last_index()))
        else:
            self.send(Message(MT.APPEND_RESP, to=m.frm, index=self.log.committed))

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
        self._scan_conf(ents)
        own = self.prs.get(self.id)
        if own is not None:
            own.maybe_update(self.log.last_index())
        self.maybe_commit()
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
