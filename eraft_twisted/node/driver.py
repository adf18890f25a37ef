"""The Twisted driver of one Raft group member.

It owns a :class:`~eraft_twisted.raft.rawnode.RawNode`, feeds it ticks from
an injected clock and messages from the peer transport, and handles each
``Ready`` strictly in order: persist -> send -> apply -> advance. It decides
nothing Raft decides; it only completes the Deferreds of proposals and
reads when the core says they are committed or safe.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, NoReturn, TypeVar

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..raft.core import Config
from ..raft.rawnode import RawNode
from ..raft.types import (
    NONE,
    ConfChange,
    Entry,
    EntryType,
    Message,
    MessageType,
    NotLeader,
    RaftError,
    Ready,
    Role,
)
from ..storage.leveldb import StorageError
from .admin import GroupAdmin
from .errors import ProposalLost, RaftTimeout, RaftUnavailable
from .forwarding import Forwarding
from .interfaces import Application, NodeStorage, Transport
from .reads import ReadQueue
from .snapshots import SnapshotReceiver, SnapshotSender

log = Logger()

T = TypeVar("T")


class RaftNode(Service):
    """Drives one member of a Raft group on the reactor."""

    fail_stop_hook: Callable[[str], None] | None = None
    """Ends the process (non-zero) after :meth:`fail_stop`; set by the group server."""
    lost_data_hint = "it must be removed from the group and added back as a new member"
    """What to do about a node that lost its data, for the fatal message."""
    awaiting_admission = False
    """Joining with an empty log: silent (no ticks, no messages) until :meth:`admit`."""
    failed = ""
    """Why :meth:`fail_stop` stopped this node."""
    _durable_vote = (0, NONE)

    def __init__(
        self,
        node_id: int,
        storage: NodeStorage,
        app: Application,
        clock: IReactorTime,
        config: Config | None = None,
        tick_interval: float = 0.1,
        request_timeout: float = 5.0,
        rng: random.Random | None = None,
        snapshot_entries: int = 10_000,
        keep_entries: int = 1_000,
        reactor: IReactorTime | None = None,  # unused: kept until callers stop passing it
        snapshot_bytes: int = 0,
    ) -> None:
        self.node_id = node_id
        self.storage = storage
        self.app = app
        self.clock = clock
        self.wall_clock: Callable[[], float] = clock.seconds
        """The time stamped on proposals (the reactor's clock unless set)."""
        self.config = config or Config(node_id)
        self.tick_interval = tick_interval
        self.request_timeout = request_timeout
        self.rng = rng or random.Random()
        self.transport: Transport | None = None
        self.raw: RawNode | None = None
        self._ticker: task.LoopingCall | None = None
        self._busy = False
        self._scheduled: IDelayedCall | None = None
        self._pending: dict[int, tuple[int, defer.Deferred[Any]]] = {}
        self.reads = ReadQueue(node_id, clock)
        self.admin = GroupAdmin(self)
        self.forwarding = Forwarding(self)
        self._leader_waiters: list[defer.Deferred[None]] = []
        self._deadlines: deque[tuple[float, defer.Deferred[Any]]] = deque()
        self._stopped = False
        self._ready_done: defer.Deferred[None] | None = None
        self.on_leader_change: list[Callable[[int, int], None]] = []
        self.on_conf_change: list[Callable[[Entry], None]] = []
        self.on_member_address: list[Callable[[int, str], None]] = []
        self.stats = {"proposals": 0, "reads": 0, "read_rounds": 0, "readies": 0}
        self.snapshot_entries = snapshot_entries
        self.snapshot_bytes = snapshot_bytes
        self.keep_entries = keep_entries
        self._compacting = False
        self.snapshot_sender = SnapshotSender(self)
        self.snapshot_receiver = SnapshotReceiver(self)

    # -- lifecycle -----------------------------------------------------
    def startService(self) -> None:
        super().startService()
        cfg = self.config
        cfg.applied = self.storage.applied_index()
        self.raw = RawNode(cfg, self.storage, self.rng)
        hs = self.raw.hard_state()
        self._durable_vote = (hs.term, hs.vote)
        self._ticker = task.LoopingCall(self._tick)
        self._ticker.clock = self.clock
        self._ticker.start(self.tick_interval, now=False)
        conf = self.raw.conf
        if conf.voters == (self.node_id,) and not conf.learners:
            self.raw.campaign()
        self._schedule()

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        self._stopped = True
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        # Appended proposals may still commit (on the other members): their
        # outcome is unknown, never "not applied".
        self._fail_pending(
            lambda index: True, "node is shutting down; the write may have been applied"
        )
        self.reads.fail_all(RaftUnavailable("node is shutting down"))
        return self._ready_done if self._ready_done is not None else defer.succeed(None)

    # -- inputs --------------------------------------------------------
    def _tick(self) -> None:
        assert self.raw is not None
        if not self.awaiting_admission:
            self.raw.tick()
            if self.raw.halted:
                self._lost_data()
                return
        self._expire_requests()
        self.reads.reissue(self.tick_interval * self.config.election_tick)
        self._schedule()

    def receive_messages(self, msgs: list[Message]) -> None:
        """Step messages from a peer into the core."""
        if self.raw is None or self._stopped or self.awaiting_admission:
            return
        for m in msgs:
            if m.to != self.node_id:
                continue
            try:
                self.raw.step(m)
            except RaftError as e:
                log.debug("dropped message {m}: {e}", m=m.type.name, e=e)
        if self.raw.halted:
            self._lost_data()
            return
        self._schedule()

    def admit(self) -> None:
        """The group has (re-)added this joining node: start taking part."""
        self.awaiting_admission = False
        self._schedule()

    def _lost_data(self) -> None:
        assert self.raw is not None
        self.fail_stop(f"{self.raw.halted}; {self.lost_data_hint}")

    def fail_stop(self, reason: str) -> None:
        """Stop at once and for good, when going on could corrupt or lose data
        (lost acknowledged entries, a failed write, a failed apply): one
        critical log line, then the exit hook ends the process non-zero."""
        if self.failed:
            return
        self.failed = reason
        log.critical("raft node {id} stops: {reason}", id=self.node_id, reason=reason)
        self._stopped = True
        if self.fail_stop_hook is not None:
            self.fail_stop_hook(reason)
        if self.running:  # no hook, or it did not exit: release the waiters
            self.stopService()

    def report_unreachable(self, nid: int) -> None:
        if self.raw is not None:
            self.raw.report_unreachable(nid)

    def report_snapshot(self, nid: int, ok: bool) -> None:
        """A snapshot stream to ``nid`` finished (or failed)."""
        if self.raw is not None and not self._stopped:
            self.raw.report_snapshot(nid, ok)
            self._schedule()

    # -- snapshots (AMP responders delegate here) ------------------------
    def snapshot_open(self, sender: int, term: int, meta: bytes) -> defer.Deferred[int]:
        return self.snapshot_receiver.open(sender, term, meta)

    def snapshot_chunk(self, stream: int, items: bytes) -> defer.Deferred[None]:
        return self.snapshot_receiver.chunk(stream, items)

    def snapshot_end(self, stream: int) -> defer.Deferred[None]:
        return self.snapshot_receiver.end(stream)

    def compact(self, keep: int | None = None) -> defer.Deferred[int]:
        """Snapshot the state machine at the applied index and drop the log
        before it (keeping ``keep`` entries for slightly lagging followers)."""
        if self.raw is None or self._compacting:
            return defer.succeed(0)
        applied = self.raw.raft.log.applied
        keep = self.keep_entries if keep is None else keep
        self._compacting = True
        conf = self.raw.conf_at(applied)

        @defer.inlineCallbacks
        def run() -> Generator[defer.Deferred[Any], Any, int]:
            # The applied data and index must be on disk before the snapshot
            # metadata claims them.
            yield self.storage.barrier(sync=False)
            yield self.storage.create_snapshot(applied, conf)
            upto = min(applied - keep, self.storage.last_index())
            if self.snapshot_bytes:
                # Keep at most snapshot_bytes of log for lagging followers
                # too: a restart scans what is kept.
                lo, hi = max(upto, 0), applied
                while lo < hi:
                    mid = (lo + hi) // 2
                    if self.storage.log_bytes(mid + 1, applied + 1) <= self.snapshot_bytes:
                        hi = mid
                    else:
                        lo = mid + 1
                upto = lo
            if upto > self.storage.first_index():
                yield self.storage.compact(upto)
            log.info("snapshot at index {i}; log compacted to {c}", i=applied, c=upto)
            return applied

        def done(result: T) -> T:
            self._compacting = False
            return result

        return run().addBoth(done)

    def _maybe_compact(self) -> None:
        assert self.raw is not None
        applied = self.raw.raft.log.applied
        snapped = self.storage.snapshot().meta.index
        since = applied - snapped
        if (self.snapshot_entries and since >= self.snapshot_entries + self.keep_entries) or (
            self.snapshot_bytes
            and since > 0
            and self.storage.log_bytes(snapped + 1, applied + 1) > self.snapshot_bytes
        ):
            self.compact().addErrback(lambda f: log.failure("log compaction failed", f))

    # -- proposals -----------------------------------------------------
    @property
    def leader(self) -> int:
        return self.raw.leader if self.raw is not None else NONE

    @property
    def term(self) -> int:
        """This node's current Raft term (0 before it starts)."""
        return self.raw.term if self.raw is not None else 0

    @property
    def is_leader(self) -> bool:
        return self.raw is not None and self.raw.role == Role.LEADER

    def propose(self, data: bytes) -> defer.Deferred[Any]:
        """Replicate ``data``; fires with the state machine's result once applied.

        On a follower the proposal is forwarded to the leader. Fails with
        RaftUnavailable when there is no leader or no quorum in time.
        """
        if self.is_leader:
            try:
                return self._with_timeout(self.propose_local(data), "write")
            except RaftError:
                pass  # e.g. a leadership transfer: wait for the next leader
        return self._with_timeout(self.forwarding.propose(data), "write")

    def propose_local(self, data: bytes) -> defer.Deferred[Any]:
        """Propose on this node, which must be the leader."""
        assert self.raw is not None
        stamp = getattr(self.app, "stamp", None)
        if stamp is not None:
            # The wall clock is read here, once, by the leader: the state
            # machine's notion of time comes only from the log.
            data = stamp(data, int(self.wall_clock() * 1000))
        index = self.raw.propose(data)
        d: defer.Deferred[Any] = defer.Deferred()
        self._pending[index] = (self.raw.term, d)
        self.stats["proposals"] += 1
        self._schedule()
        return d

    def propose_forwarded(self, data: bytes) -> defer.Deferred[bytes]:
        """A follower forwarded a client write to us (AMP responder)."""
        return self.forwarding.answer(data)

    def propose_conf_change(self, cc: ConfChange) -> defer.Deferred[Any]:
        """Propose a membership change on the leader; fires once applied."""
        if not self.is_leader or self.raw is None:
            return defer.fail(NotLeader(self.leader))
        try:
            index = self.raw.propose_conf_change(cc)
        except RaftError as e:
            return defer.fail(e)
        d: defer.Deferred[Any] = defer.Deferred()
        self._pending[index] = (self.raw.term, d)
        self._schedule()
        return self._with_timeout(d, "membership change")

    def change_membership(self, kind: int, node_id: int, address: str) -> defer.Deferred[int]:
        """Add a learner (``ADD_LEARNER``), promote/add a voter, remove a
        member or re-admit one that lost its data (``REJOIN``), through the
        leader; fires with the change's log index once applied."""
        return self.admin.change_membership(kind, node_id, address)

    def transfer_leadership(self, target: int = NONE) -> defer.Deferred[int]:
        """Hand leadership to ``target`` (or the most up-to-date follower);
        fires with the new leader's id."""
        return self.admin.transfer_leadership(target)

    # -- linearizable reads ----------------------------------------------
    def read(self, fn: Callable[[], T]) -> defer.Deferred[T]:
        """Run ``fn`` once it is linearizable (ReadIndex), on leader or follower."""
        d = self.reads.add(fn)
        self.stats["reads"] += 1
        self._schedule()
        return self._with_timeout(d, "read")

    def _issue_read_index(self) -> None:
        if self.raw is not None and self.reads.issue(self.raw):
            self.stats["read_rounds"] += 1

    def _serve_reads(self) -> None:
        assert self.raw is not None
        self.reads.serve(self.raw.raft.log.applied)

    # -- the Ready loop ----------------------------------------------------
    def _schedule(self) -> None:
        if self._scheduled is None or not self._scheduled.active():
            if not self._busy and not self._stopped:
                self._scheduled = self.clock.callLater(0, self._run)

    def _run(self) -> None:
        self._scheduled = None
        if self._busy or self._stopped or self.raw is None:
            return
        self._issue_read_index()
        if not self.raw.has_ready():
            self._serve_reads()
            return
        rd = self.raw.ready()
        self._busy = True
        self.stats["readies"] += 1
        d = self._handle_ready(rd)
        self._ready_done = d

        def done(_: None) -> None:
            self._busy = False
            self._ready_done = None
            self._schedule()

        d.addCallbacks(done, self._fatal)

    def _fatal(self, f: Failure) -> None:
        if f.check(StorageError):
            self.fail_stop(f"storage failed: {f.getErrorMessage()}")
            return
        log.failure("persisting or applying a Ready failed", f)
        self.fail_stop(
            "persisting or applying a Ready failed: "
            f"{type(f.value).__name__}: {f.getErrorMessage()}"
        )

    def _sends_first(self, rd: Ready) -> bool:
        """Whether a leader may send while it persists (§10.2.1): not what
        carries a term or vote not yet on disk, nor a commit index covering
        this Ready's own entries (both happen to a lone voter: it is elected,
        and commits, within one Ready)."""
        assert self.raw is not None
        hs = rd.hard_state
        if self.raw.role != Role.LEADER:
            return False
        if hs is None:
            return True
        if (hs.term, hs.vote) != self._durable_vote:
            return False
        return not (rd.entries and hs.commit >= rd.entries[0].index)

    @defer.inlineCallbacks
    def _handle_ready(self, rd: Ready) -> Generator[defer.Deferred[Any], Any, None]:
        assert self.raw is not None
        if rd.soft_state is not None:
            self._soft_state_changed(rd.soft_state.leader, rd.soft_state.role)
        early = self._sends_first(rd)
        if early:
            self._send(rd.messages)
        if rd.snapshot is not None:
            yield self.storage.install_snapshot(rd.snapshot)
            self.app.restore_snapshot(rd.snapshot)
            covered = rd.snapshot.meta.index
            self._fail_pending(
                lambda index: index <= covered,
                "leadership changed and a snapshot replaced the log; "
                "the write may have been applied",
            )
        if rd.entries or rd.hard_state is not None:
            persisted = self.storage.persist(rd.entries, rd.hard_state, sync=rd.must_sync)
            if rd.must_sync:
                yield persisted
                if rd.hard_state is not None:
                    self._durable_vote = (rd.hard_state.term, rd.hard_state.vote)
            else:
                # Only the commit index changed: nothing sent or applied
                # depends on it being on disk (it is recovered from a
                # quorum), and the writer keeps it in order with what follows.
                persisted.addErrback(self._fatal)
        if not early:
            self._send(rd.messages)
        if rd.committed_entries:
            self._apply(rd.committed_entries)
        for rs in rd.read_states:
            self.reads.answered(rs.index, rs.request_ctx)
        self.raw.advance(rd)
        if rd.snapshot is not None:
            self.snapshot_receiver.installed()
        self._serve_reads()
        self._maybe_compact()

    def _send(self, msgs: list[Message]) -> None:
        if self.transport is None:
            return
        rest = []
        for m in msgs:
            if m.type == MessageType.SNAPSHOT:
                # Stream the state machine instead of the (empty) payload.
                self.snapshot_sender.send(m.to, m.term)
            else:
                rest.append(m)
        if rest:
            self.transport.send(rest)

    def _apply(self, entries: list[Entry]) -> None:
        assert self.raw is not None
        conf = None
        if any(e.type == EntryType.CONF_CHANGE for e in entries):
            conf = self.raw.conf_at(entries[-1].index)
        results = self.app.apply_batch(entries, conf)
        for e, result in zip(entries, results, strict=True):
            if e.type == EntryType.CONF_CHANGE:
                for cb in self.on_conf_change:
                    cb(e)
            waiter = self._pending.pop(e.index, None)
            if waiter is None:
                continue
            term, d = waiter
            if d.called:
                continue  # timed out already
            if term != e.term:
                d.errback(ProposalLost("leadership changed before the write committed"))
            else:
                d.callback(result)
        # Anything proposed at or below the applied index and not matched was
        # skipped by an installed snapshot, which may well contain it.
        last = entries[-1].index
        self._fail_pending(
            lambda index: index <= last,
            "leadership changed and a snapshot replaced the log; the write may have been applied",
        )

    def _fail_pending(self, which: Callable[[int], bool], why: str) -> None:
        """Fail the proposals at the chosen indexes with an unknown outcome."""
        for idx in [i for i in self._pending if which(i)]:
            _, d = self._pending.pop(idx)
            if not d.called:
                d.errback(RaftTimeout(why, self.leader))

    def _soft_state_changed(self, leader: int, role: Role) -> None:
        log.info(
            "raft node {id}: role {role}, leader {leader}, term {term}",
            id=self.node_id,
            role=role.label(),
            leader=leader,
            term=self.raw.term if self.raw else 0,
        )
        for cb in self.on_leader_change:
            cb(leader, int(role))
        if leader != NONE:
            waiters, self._leader_waiters = self._leader_waiters, []
            for w in waiters:
                if not w.called:
                    w.callback(None)
        if role != Role.LEADER:
            self.reads.reissue(0)

    # -- helpers -----------------------------------------------------------
    def _sleep(self, seconds: float) -> defer.Deferred[None]:
        return task.deferLater(self.clock, seconds, lambda: None)

    def _wait_leader(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self._leader_waiters.append(d)

        # Poll too: a follower may learn the leader without a soft-state change.
        def poll() -> None:
            if not d.called:
                d.callback(None)

        self.clock.callLater(self.tick_interval, poll)
        return d

    def _with_timeout(self, d: defer.Deferred[T], what: str) -> defer.Deferred[T]:
        # One deque swept on every tick instead of a DelayedCall per request:
        # deadlines arrive in order because the timeout is the same for all.
        self._deadlines.append((self.clock.seconds() + self.request_timeout, d))
        timeout = self.request_timeout

        def timed_out(f: Failure) -> NoReturn:
            f.trap(defer.CancelledError)
            raise RaftTimeout(
                f"{what} not confirmed within {timeout:g}s (no leader or no quorum)",
                self.leader,
            )

        return d.addErrback(timed_out)

    def _expire_requests(self) -> None:
        now = self.clock.seconds()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, d = deadlines.popleft()
            if not d.called:
                d.cancel()
