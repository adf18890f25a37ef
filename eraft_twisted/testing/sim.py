"""Deterministic simulation of a Raft group over a faulty network.

One seeded :class:`random.Random` drives everything: message loss, delay,
duplication and reordering, partitions (also one-way) and their healing,
crashes and restarts, client writes
and linearizable reads, leader transfers, snapshots with log compaction
and, optionally, membership changes. The Raft safety properties are
checked after every input to every node; at the end faults heal and
liveness is checked. A scenario is exactly reproducible from
``(seed, nodes, membership, ticks)``; a violation carries a one-line
replay command.

Every crash is a power cut (:mod:`.powercut`): a node comes back with only
what it had synced -- a Ready's writes are synced when ``must_sync`` says
so; the commit index, snapshots, compactions and a kept state machine are
written unsynced -- and, sometimes, a prefix of what it wrote after that.
Now and then the whole cluster loses power at once, and some seeds model
the OS writing its cache back every few ticks.

Checked after every input to a node (tick, message, client call):

- Election Safety: at most one leader per term, over the whole history;
- Log Matching, on persisted logs: an (index, term) pair always has the
  same content and the same predecessor term, hence identical prefixes;
- Leader Completeness: a leader holds every entry committed in earlier terms;
- a leader's commit index only moves to an entry of its own term (§5.4.2);
- committed entries never change; commit never goes back (until a crash);
  applied <= committed;
- State Machine Safety: every node applies the same entry at each index,
  each index exactly once and in order; a proposal is applied at most once;
  a snapshot carries exactly the state applied at its index;
- reads: the index a read is answered with covers everything committed
  before the read was issued, the answering leader's term is at least that
  of every leader elected before it (no answer from a deposed, isolated
  leader), and the read is served only once that index is applied;
- the membership in use is the last one in the node's log;
- Durability: no node finds that it lost entries it acknowledged (the
  core halts such a node), whatever power cuts it went through.

After healing: a stable leader within a bounded number of ticks, writes
proposed then commit on every member, and reads on every member are
answered.

Command line::

    python -m eraft_twisted.testing.sim --seed 1234 --nodes 5 --membership
    python -m eraft_twisted.testing.sim --seeds 20000 --jobs 2
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import multiprocessing
import os
import random
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..raft.confchange import decode_conf_change
from ..raft.core import Config
from ..raft.rawnode import RawNode
from ..raft.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    RaftError,
    Ready,
    Role,
    Snapshot,
)
from .powercut import PowerCutStorage, cut_power, sends_first

MT = MessageType
TICK = 10
"""Simulated time units per tick; message delays are counted in units."""

_SNAP = struct.Struct(">q8s")


@dataclass(frozen=True)
class SimParams:
    """What a scenario is reproducible from."""

    seed: int
    nodes: int = 3
    membership: bool = False
    ticks: int = 500

    def replay_command(self) -> str:
        """A one-line shell command that replays this scenario exactly."""
        extra = " --membership" if self.membership else ""
        if self.ticks != SimParams.ticks:
            extra += f" --ticks {self.ticks}"
        return (
            f".venv/bin/python -m eraft_twisted.testing.sim --seed {self.seed} "
            f"--nodes {self.nodes}{extra}"
        )

    def trial_command(self) -> str:
        """The same replay through trial."""
        env = f"ERAFT_SIM_SEED={self.seed} ERAFT_SIM_NODES={self.nodes}"
        if self.membership:
            env += " ERAFT_SIM_MEMBERSHIP=1"
        if self.ticks != SimParams.ticks:
            env += f" ERAFT_SIM_TICKS={self.ticks}"
        return f"{env} .venv/bin/trial tests.raft.test_simulation.Replay.test_replay"


class Violation(AssertionError):
    """A safety or liveness property failed; the message says how to replay."""

    def __init__(self, params: SimParams, now: int, what: str) -> None:
        self.params = params
        self.now = now
        self.what = what
        super().__init__(
            f"{what}\n  at time {now} (tick {now // TICK}) of seed={params.seed} "
            f"nodes={params.nodes} membership={params.membership} ticks={params.ticks}\n"
            f"  replay: {params.replay_command()}\n"
            f"      or: {params.trial_command()}"
        )


@dataclass
class SimStats:
    """What a run exercised, to tell a weak schedule from a strong one."""

    steps: int = 0
    messages: int = 0
    dropped: int = 0
    leaders: int = 0
    max_term: int = 0
    proposals: int = 0
    committed: int = 0
    reads_served: int = 0
    crashes: int = 0
    blackouts: int = 0
    lost_writes: int = 0
    snapshots_sent: int = 0
    snapshots_installed: int = 0
    compactions: int = 0
    transfers: int = 0
    conf_changes: int = 0
    liveness_ticks: int = 0
    election_ticks: int = 0
    digest: str = ""

    def line(self) -> str:
        """One-line summary."""
        return " ".join(f"{k}={v}" for k, v in self.__dict__.items())


class _Node:
    """One simulated server: what it synced to its disk survives crashes, the rest does not."""

    def __init__(self, nid: int, storage: PowerCutStorage, persistent_sm: bool) -> None:
        self.id = nid
        self.storage = storage
        self.raw: RawNode | None = None
        self.incarnation = 0
        self.persistent_sm = persistent_sm
        self.sm_index = 0
        self.sm_hash = b"\0" * 8
        self.reads: list[tuple[int, bytes]] = []
        self.stamped = 0
        self.last_commit = 0
        self.was_leader = False
        self.checks = 0
        self.commit_deferred = False


@dataclass
class _Read:
    node: int
    incarnation: int
    commit_at_issue: int
    leader_term_at_issue: int
    answers: int = 0


@dataclass
class _Knobs:
    """The fault schedule's rates, drawn from the seed."""

    drop: float = 0.0
    dup: float = 0.0
    max_delay: int = 1
    long_delay: float = 0.0
    partition: float = 0.0
    heal: float = 0.0
    crash: float = 0.0
    restart: float = 0.0
    crash_in_ready: float = 0.0
    blackout: float = 0.0
    writeback: int = 0
    leader_sends_first: bool = False
    cut_early: float = 0.0
    propose: float = 0.0
    read: float = 0.0
    transfer: float = 0.0
    member: float = 0.0
    unreachable: float = 0.0
    kill_fresh_leader: float = 0.0
    snap_every: int = 10
    snap_lag: int = 0
    extra: list[int] = field(default_factory=list)


class Simulation:
    """N RawNodes over a simulated network, with safety checked after every step."""

    def __init__(self, params: SimParams) -> None:
        self.params = params
        self.rng = random.Random(params.seed)
        rng = self.rng
        self.now = 0
        self.stats = SimStats()
        self._trace = hashlib.blake2b(digest_size=8)
        self._seq = 0
        self.net: list[tuple[int, int, Message, int, bool]] = []
        self.blocked: set[tuple[int, int]] = set()
        self.healthy = False
        self.no_faults = False

        # Configuration of the cluster, drawn from the seed.
        self.election_tick = rng.choice((5, 10, 10, 20))
        self.heartbeat_tick = rng.choice((1, 1, 2, 3))
        self.max_size = rng.choice((1, 200, 1024, 48 * 1024))
        self.max_inflight = rng.choice((1, 2, 4, 256))
        self.pre_vote = rng.random() < 0.85
        self.check_quorum = rng.random() < 0.85
        k = self.knobs = _Knobs()
        k.drop = rng.choice((0.0, 0.01, 0.05, 0.1, 0.2))
        k.dup = rng.choice((0.0, 0.0, 0.02, 0.1))
        k.max_delay = rng.choice((1, 2, 5, TICK, 3 * TICK))
        k.long_delay = rng.choice((0.0, 0.0, 0.01))
        k.partition = rng.choice((0.0, 0.01, 0.03, 0.08))
        k.heal = rng.choice((0.02, 0.05, 0.2))
        k.crash = rng.choice((0.0, 0.005, 0.02, 0.05))
        k.restart = rng.choice((0.02, 0.1, 0.3))
        k.crash_in_ready = rng.choice((0.0, 0.001, 0.005))
        k.blackout = rng.choice((0.0, 0.0, 0.002, 0.01))
        k.writeback = rng.choice((0, 0, 5, 30))
        k.leader_sends_first = rng.random() < 0.5
        # Power cuts right after a leader sent, before its sync: rare by
        # chance, and where a leader sending too much would show.
        k.cut_early = rng.choice((0.0, 0.01, 0.05))
        k.propose = rng.choice((0.02, 0.05, 0.2))
        k.read = rng.choice((0.0, 0.01, 0.05))
        k.transfer = rng.choice((0.0, 0.005, 0.02))
        k.member = rng.choice((0.01, 0.03, 0.08)) if params.membership else 0.0
        k.unreachable = rng.choice((0.0, 0.5, 1.0))
        k.kill_fresh_leader = rng.choice((0.0, 0.0, 0.03, 0.1))
        k.snap_every = rng.choice((3, 10, 20, 50))
        k.snap_lag = rng.choice((0, 0, 2))
        self.max_ids = params.nodes + (2 if params.membership else 0)

        ids = tuple(range(1, params.nodes + 1))
        self.nodes: dict[int, _Node] = {}
        for nid in ids:
            self._add_node(nid, ConfState(ids))

        # Checker state: the history of the whole cluster.
        self.leaders: dict[int, int] = {}
        self.max_leader_term = 0
        self.committed_terms: list[int] = [0]
        self.commit_by_term: dict[int, int] = {}
        self.chain: list[bytes] = [b"\0" * 8]
        self.applied: list[tuple[int, int, bytes]] = [(0, 0, b"")]
        self.entries_seen: dict[tuple[int, int], tuple[int, bytes, int | None]] = {}
        self.data_index: dict[bytes, int] = {}
        self.reads: dict[bytes, _Read] = {}
        self.read_seq = 0
        self.prop_seq = 0
        self.events: list[str] = []
        self.storm = False
        self.epoch_end = 0
        self.committed_conf = ConfState(ids)

    # -- plumbing ------------------------------------------------------------
    def _config(self, nid: int, applied: int) -> Config:
        return Config(
            nid,
            election_tick=self.election_tick,
            heartbeat_tick=self.heartbeat_tick,
            max_size_per_msg=self.max_size,
            max_inflight_msgs=self.max_inflight,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
            applied=applied,
        )

    def _add_node(self, nid: int, conf: ConfState) -> _Node:
        n = _Node(nid, PowerCutStorage(conf), self.rng.random() < 0.5)
        self.nodes[nid] = n
        self._start(n)
        return n

    def _start(self, n: _Node) -> None:
        st = n.storage
        snap = st.snapshot()
        if not n.persistent_sm or n.sm_index < snap.meta.index:
            n.sm_index, n.sm_hash = self._decode_snap(snap)
        n.raw = RawNode(self._config(n.id, n.sm_index), st, random.Random(self.rng.getrandbits(64)))
        n.incarnation += 1
        n.reads = []
        n.stamped = 0
        n.was_leader = False
        n.commit_deferred = False
        n.last_commit = n.raw.raft.log.committed
        self._check_node(n, None)

    def _crash(self, n: _Node, power_cut: bool = True) -> None:
        """Stop ``n``: a power cut loses its unsynced writes; a clean stop syncs first."""
        n.raw = None
        n.reads = []
        st = n.storage
        if not power_cut:
            st.sync()
        lost = cut_power(st, self.rng)
        self.stats.lost_writes += lost
        if n.persistent_sm:
            n.sm_index, n.sm_hash = st.state_machine
        else:
            n.sm_index, n.sm_hash = 0, b"\0" * 8
        self.stats.crashes += 1
        self.note(f"node {n.id} crashes, losing {lost} unsynced writes")
        self._mix(9, n.id, lost)

    def _sync_ready(self, n: _Node, rd: Ready) -> bool:
        """Whether the writes of ``rd`` are synced before anything else is done."""
        return rd.must_sync

    def _decode_snap(self, snap: Snapshot) -> tuple[int, bytes]:
        if snap.is_empty():
            return 0, b"\0" * 8
        index, digest = _SNAP.unpack(snap.data)
        return index, digest

    def describe(self) -> str:
        """The state of every node, for a failure report."""
        lines = [
            f"  knobs: election_tick={self.election_tick} heartbeat_tick={self.heartbeat_tick} "
            f"max_size={self.max_size} max_inflight={self.max_inflight} pre_vote={self.pre_vote} "
            f"check_quorum={self.check_quorum} {self.knobs}"
        ]
        lines.extend("  | " + e for e in self.events[-60:])
        for n in self.nodes.values():
            if n.raw is None:
                lines.append(f"  node {n.id}: down (synced {n.storage.hard_state})")
                continue
            st = n.raw.status()
            prog = st.pop("progress")
            lines.append(f"  node {n.id}: {st} sm={n.sm_index} unsynced={len(n.storage.pending)}")
            for nid, pr in n.raw.raft.prs.items():
                if prog:
                    lines.append(f"      {nid}: {pr!r}")
        return "\n".join(lines)

    def fail(self, what: str) -> Violation:
        """Build the exception for a failed property at the current time."""
        return Violation(self.params, self.now, what)

    def note(self, what: str) -> None:
        """Remember an event for the failure report (the last 60 are kept)."""
        self.events.append(f"t={self.now} ({self.now // TICK}): {what}")
        if len(self.events) > 120:
            del self.events[:60]

    def _mix(self, *vals: int) -> None:
        self._trace.update(struct.pack(f">{len(vals)}q", *vals))

    def live(self) -> list[_Node]:
        """Running nodes, in id order."""
        return [n for n in self.nodes.values() if n.raw is not None]

    def leader(self) -> _Node | None:
        """The running leader with the highest term, if any."""
        best: _Node | None = None
        for n in self.live():
            assert n.raw is not None
            if n.raw.role == Role.LEADER and (best is None or n.raw.term > best.raw.term):  # type: ignore[union-attr]
                best = n
        return best

    # -- the network -----------------------------------------------------------
    def _send(self, frm: _Node, m: Message) -> None:
        k = self.knobs
        rng = self.rng
        copies = 2 if k.dup and rng.random() < k.dup else 1
        for c in range(copies):
            if self.healthy:
                delay = 1
            else:
                delay = rng.randint(1, k.max_delay)
                if k.long_delay and rng.random() < k.long_delay:
                    delay += rng.randint(TICK, 10 * TICK)
            self._seq += 1
            heapq.heappush(self.net, (self.now + delay, self._seq, m, frm.incarnation, c == 0))

    def _deliver_due(self) -> None:
        net = self.net
        while net and net[0][0] <= self.now:
            _, _, m, inc, original = heapq.heappop(net)
            src = self.nodes.get(m.frm)
            dst = self.nodes.get(m.to)
            ok = (
                dst is not None
                and dst.raw is not None
                and (m.frm, m.to) not in self.blocked
                and not (self.knobs.drop and self.rng.random() < self.knobs.drop)
            )
            if src is not None and src.raw is not None and src.incarnation == inc and original:
                if m.type == MT.SNAPSHOT:
                    src.raw.report_snapshot(m.to, ok)
                    self._after_input(src, None)
                elif (
                    not ok and self.knobs.unreachable and self.rng.random() < self.knobs.unreachable
                ):
                    src.raw.report_unreachable(m.to)
                    self._after_input(src, None)
            if not ok:
                self.stats.dropped += 1
                continue
            assert dst is not None and dst.raw is not None
            self.stats.messages += 1
            self._mix(int(m.type), m.frm, m.to, m.term, m.index)
            try:
                dst.raw.step(m)
            except RaftError as e:
                raise self.fail(
                    f"step({m.type.name}) from {m.frm} on node {m.to} raised {e!r}"
                ) from e
            self._after_input(dst, m)

    # -- Ready handling ----------------------------------------------------------
    def _after_input(self, n: _Node, m: Message | None) -> None:
        """Stamp read answers, handle every Ready, then check the invariants."""
        self.stats.steps += 1
        raw = n.raw
        if raw is None:
            return
        rs = raw.raft.read_states
        if len(rs) > n.stamped:
            term = m.term if m is not None and m.type == MT.READ_INDEX_RESP else raw.term
            for r in rs[n.stamped :]:
                self._check_read_answer(n, r.request_ctx, r.index, term)
            n.stamped = len(rs)
        # Check before the Ready: handling it may compact what the check reads.
        self._check_node(n, m)
        self._handle_ready(n)

    def _handle_ready(self, n: _Node) -> None:
        raw = n.raw
        assert raw is not None
        st = n.storage
        rng = self.rng
        k = self.knobs
        crashing = bool(k.crash_in_ready) and not self.no_faults
        while raw.has_ready():
            rd = raw.ready()
            n.stamped = 0
            early = k.leader_sends_first and self._sends_first(n, rd)
            if early:
                self._send_all(n, rd)
            # 1. persist, then sync if the Ready says so
            if rd.snapshot is not None:
                self._check_snapshot_meta(n, rd.snapshot)
                st.apply_snapshot(rd.snapshot)
            if rd.entries:
                st.append(rd.entries)
                self._check_persisted(n, rd.entries)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
            if (crashing and rng.random() < k.crash_in_ready) or (
                early and rd.must_sync and not self.no_faults and rng.random() < k.cut_early
            ):
                self.note(f"node {n.id} loses power before its sync (sent first: {early})")
                self._crash(n)
                return
            if self._sync_ready(n, rd):
                st.sync()
            if n.commit_deferred:
                n.commit_deferred = False
                self._check_node(n, None, synced=True)
            if crashing and rng.random() < k.crash_in_ready:
                self._crash(n)
                return
            # 2. send
            if not early:
                self._send_all(n, rd)
            if crashing and rng.random() < k.crash_in_ready:
                self._crash(n)
                return
            # 3. apply
            sm_before = n.sm_index
            if rd.snapshot is not None:
                self._install(n, rd.snapshot)
            for e in rd.committed_entries:
                self._apply(n, e)
            if n.persistent_sm and n.sm_index != sm_before:
                st.save_state_machine(n.sm_index, n.sm_hash)
            # 4. reads
            for r in rd.read_states:
                n.reads.append((r.index, r.request_ctx))
            raw.advance(rd)
            self._serve_reads(n)
            self._maybe_snapshot(n)

    def _sends_first(self, n: _Node, rd: Ready) -> bool:
        assert n.raw is not None
        return sends_first(n.raw, rd, n.storage.durable.hard_state)

    def _send_all(self, n: _Node, rd: Ready) -> None:
        for m in rd.messages:
            if m.type == MT.SNAPSHOT:
                self.stats.snapshots_sent += 1
            self._send(n, m)

    def _install(self, n: _Node, snap: Snapshot) -> None:
        index, digest = self._decode_snap(snap)
        if index != snap.meta.index:
            raise self.fail(f"node {n.id}: snapshot meta {snap.meta.index} carries state {index}")
        if index >= len(self.chain) or self.chain[index] != digest:
            raise self.fail(f"node {n.id}: snapshot at {index} holds a state never applied there")
        if index <= n.sm_index:
            raise self.fail(
                f"node {n.id}: snapshot {index} would move state back from {n.sm_index}"
            )
        n.sm_index, n.sm_hash = index, digest
        self.stats.snapshots_installed += 1

    def _apply(self, n: _Node, e: Entry) -> None:
        if e.index != n.sm_index + 1:
            raise self.fail(f"node {n.id} applied {e.index} right after {n.sm_index}")
        assert n.raw is not None
        if e.index > n.raw.raft.log.committed:
            raise self.fail(
                f"node {n.id} applies {e.index} beyond commit {n.raw.raft.log.committed}"
            )
        rec = (e.term, int(e.type), e.data)
        if e.index < len(self.applied):
            if self.applied[e.index] != rec:
                raise self.fail(
                    f"State Machine Safety: node {n.id} applied {rec[:2]} at {e.index}, "
                    f"another node applied {self.applied[e.index][:2]}"
                )
            n.sm_hash = self.chain[e.index]
        else:
            if e.index != len(self.applied):
                raise self.fail(f"node {n.id} applied {e.index} with a gap")
            h = hashlib.blake2b(n.sm_hash, digest_size=8)
            h.update(struct.pack(">qqq", e.index, e.term, int(e.type)))
            h.update(e.data)
            self.applied.append(rec)
            self.chain.append(h.digest())
            n.sm_hash = self.chain[e.index]
            self.stats.committed = e.index
            if e.type == EntryType.NORMAL and e.data:
                prev = self.data_index.setdefault(e.data, e.index)
                if prev != e.index:
                    raise self.fail(f"proposal {e.data!r} applied twice: at {prev} and {e.index}")
            elif e.type == EntryType.CONF_CHANGE:
                self.stats.conf_changes += 1
                cc, conf = decode_conf_change(e.data)
                self.committed_conf = conf
                self.note(f"applied {cc.type.name} {cc.node_id} at {e.index}: {conf}")
        n.sm_index = e.index

    def _maybe_snapshot(self, n: _Node) -> None:
        st = n.storage
        if n.sm_index - st.snapshot().meta.index < self.knobs.snap_every:
            return
        assert n.raw is not None
        st.create_snapshot(n.sm_index, n.raw.conf_at(n.sm_index), _SNAP.pack(n.sm_index, n.sm_hash))
        st.compact(max(n.sm_index - self.knobs.snap_lag, st.first_index() - 1))
        self.stats.compactions += 1

    # -- reads -------------------------------------------------------------------
    def _issue_read(self, n: _Node) -> None:
        assert n.raw is not None
        self.read_seq += 1
        ctx = b"r%d" % self.read_seq
        self.reads[ctx] = _Read(
            n.id, n.incarnation, len(self.committed_terms) - 1, self.max_leader_term
        )
        try:
            n.raw.read_index(ctx)
        except RaftError:
            pass
        self._after_input(n, None)

    def _check_read_answer(self, n: _Node, ctx: bytes, index: int, term: int) -> None:
        rd = self.reads.get(ctx)
        if rd is None:
            raise self.fail(f"node {n.id} got an answer for unknown read {ctx!r}")
        if rd.node != n.id:
            raise self.fail(f"node {n.id} got the answer to node {rd.node}'s read {ctx!r}")
        rd.answers += 1
        if index < rd.commit_at_issue:
            raise self.fail(
                f"stale read {ctx!r} on node {n.id}: read index {index} < {rd.commit_at_issue} "
                "committed before the read was issued"
            )
        if term < rd.leader_term_at_issue:
            raise self.fail(
                f"read {ctx!r} on node {n.id} answered by a leader of term {term} although a "
                f"leader of term {rd.leader_term_at_issue} was elected before it was issued"
            )

    def _serve_reads(self, n: _Node) -> None:
        if not n.reads:
            return
        still = []
        for index, ctx in n.reads:
            if n.sm_index >= index:
                rd = self.reads[ctx]
                if rd.incarnation == n.incarnation:
                    if n.sm_index < rd.commit_at_issue:
                        raise self.fail(f"read {ctx!r} served before applying what it must see")
                    self.stats.reads_served += 1
            else:
                still.append((index, ctx))
        n.reads = still

    # -- invariants ------------------------------------------------------------------
    def _check_persisted(self, n: _Node, entries: list[Entry]) -> None:
        """Log Matching, incrementally: (index, term) fixes content and predecessor term."""
        st = n.storage
        floor = st.first_index() - 1
        seen = self.entries_seen
        for e in entries:
            if e.index <= floor:
                continue
            prev = st.term(e.index - 1)
            rec = (int(e.type), e.data, prev)
            old = seen.get((e.index, e.term))
            if old is None:
                seen[(e.index, e.term)] = rec
            elif old[:2] != rec[:2] or (old[2] is not None and old[2] != prev):
                raise self.fail(
                    f"Log Matching: node {n.id} persisted ({e.index}, {e.term}) = "
                    f"{rec[:2]!r} after term {prev}; elsewhere {old[:2]!r} after term {old[2]}"
                )

    def _check_snapshot_meta(self, n: _Node, snap: Snapshot) -> None:
        i, t = snap.meta.index, snap.meta.term
        if i >= len(self.committed_terms):
            raise self.fail(f"node {n.id} installs snapshot {i} beyond global commit")
        if self.committed_terms[i] != t:
            raise self.fail(f"node {n.id} installs snapshot ({i}, {t}) not in the committed log")

    def _check_node(self, n: _Node, m: Message | None, synced: bool = False) -> None:
        raw = n.raw
        assert raw is not None
        r = raw.raft
        # The core halts a node that finds it lost entries it acknowledged:
        # with every sync done, no power cut may cause that. (getattr: a core
        # without that detection has nothing to report.)
        halted = getattr(r, "halted", "")
        if halted:
            raise self.fail(f"Durability: {halted}")
        log = r.log
        term = r.term
        if term > self.stats.max_term:
            self.stats.max_term = term
        # Election Safety
        if r.role == Role.LEADER:
            who = self.leaders.setdefault(term, n.id)
            if who != n.id:
                raise self.fail(f"Election Safety: nodes {who} and {n.id} both lead term {term}")
            if not n.was_leader:
                n.was_leader = True
                self.stats.leaders += 1
                self._mix(7, n.id, term)
                self.note(f"node {n.id} leads term {term} conf {raw.conf}")
                if term > self.max_leader_term:
                    self.max_leader_term = term
                self._check_conf(n)
            self._check_leader_complete(n)
        elif n.was_leader:
            n.was_leader = False
            self.note(f"node {n.id} steps down in term {term} ({r.role.name})")
        # commit: monotonic, and committed entries never change
        c = log.committed
        if c < n.last_commit:
            raise self.fail(f"node {n.id}: commit index went back from {n.last_commit} to {c}")
        if c > log.last_index():
            raise self.fail(f"node {n.id}: commit {c} beyond last index {log.last_index()}")
        if not synced and log.unstable.entries and c >= log.unstable.offset:
            # A lone voter counts its entries before it wrote them; nothing
            # shows that commit until its Ready synced them: check it then.
            c = n.last_commit
            n.commit_deferred = True
        if c > n.last_commit:
            if r.role == Role.LEADER and log.term(c) != term:
                raise self.fail(
                    f"leader {n.id} of term {term} committed {c} of term {log.term(c)}: "
                    "only an entry of the leader's own term is committed by counting (§5.4.2)"
                )
            ct = self.committed_terms
            grew = False
            for i in range(max(n.last_commit + 1, log.first_index() - 1), c + 1):
                t = log.term(i)
                if i < len(ct):
                    if ct[i] != t:
                        raise self.fail(
                            f"committed entry changed: node {n.id} has term {t} at {i}, "
                            f"committed term there is {ct[i]}"
                        )
                elif i == len(ct):
                    ct.append(t)
                    grew = True
                else:
                    raise self.fail(f"node {n.id} committed {c} past a gap at {len(ct)}")
            n.last_commit = c
            if grew:
                self.commit_by_term[term] = max(self.commit_by_term.get(term, 0), c)
                for other in self.live():
                    if other is not n and other.raw.role == Role.LEADER:  # type: ignore[union-attr]
                        self._check_leader_complete(other)
        c = log.committed
        if log.applied > c or n.sm_index > c:
            raise self.fail(f"node {n.id}: applied {log.applied}/{n.sm_index} beyond commit {c}")
        n.checks += 1
        if n.checks % 64 == 0:
            self._check_conf(n)

    def _check_leader_complete(self, n: _Node) -> None:
        """Every entry committed in an earlier term is in this leader's log."""
        raw = n.raw
        assert raw is not None
        term = raw.term
        c = 0
        for t, idx in self.commit_by_term.items():
            if t < term and idx > c:
                c = idx
        if c == 0:
            return
        log = raw.raft.log
        if c < log.first_index() - 1:
            return
        if c > log.last_index() or log.term(c) != self.committed_terms[c]:
            raise self.fail(
                f"Leader Completeness: leader {n.id} of term {term} lacks committed entry {c} "
                f"(term {self.committed_terms[c]}); it has term {log.term(c)} there"
            )

    def _check_conf(self, n: _Node) -> None:
        """The membership in use is the one in the last conf entry of the log."""
        raw = n.raw
        assert raw is not None
        log = raw.raft.log
        want: ConfState | None = None
        for e in reversed(log.all_entries()):
            if e.type == EntryType.CONF_CHANGE:
                want = decode_conf_change(e.data)[1]
                break
        if want is None:
            snap = log.snapshot()
            want = n.storage.initial_state()[1] if snap.is_empty() else snap.meta.conf
        if want is not None and want != raw.conf:
            raise self.fail(f"node {n.id} uses membership {raw.conf}, its log says {want}")
        if raw.role == Role.LEADER and set(raw.raft.prs) != set(raw.conf.members()):
            raise self.fail(f"leader {n.id} tracks {sorted(raw.raft.prs)} not {raw.conf}")

    # -- the schedule ------------------------------------------------------------------
    def _propose(self, n: _Node) -> tuple[int, int, bytes] | None:
        assert n.raw is not None
        self.prop_seq += 1
        data = b"p%d" % self.prop_seq
        if self.rng.random() < 0.05:
            data += b"x" * self.rng.randint(100, 3000)
        try:
            index = n.raw.propose(data)
            term = n.raw.term
            self.stats.proposals += 1
        except RaftError:
            index = term = 0
        self._after_input(n, None)
        return (index, term, data) if index else None

    def _membership_change(self) -> None:
        lead = self.leader()
        if lead is None:
            return
        raw = lead.raw
        assert raw is not None
        conf = raw.conf
        rng = self.rng
        members = conf.members()
        r = rng.random()
        if r < 0.45:
            outside = [nid for nid in self.nodes if nid not in members]
            if len(self.nodes) < self.max_ids:
                outside.append(max(self.nodes) + 1)
            if not outside:
                return
            cc = ConfChange(ConfChangeType.ADD_LEARNER, rng.choice(outside))
            if cc.node_id not in self.nodes:
                self._add_node(cc.node_id, ConfState())
        elif r < 0.9:
            if len(conf.voters) <= 1 and not conf.learners:
                return
            cc = ConfChange(ConfChangeType.REMOVE, rng.choice(members))
        else:
            if not conf.learners:
                return
            cc = ConfChange(ConfChangeType.ADD_VOTER, rng.choice(conf.learners))
        try:
            idx = raw.propose_conf_change(cc)
            self.note(f"leader {lead.id} proposes {cc.type.name} {cc.node_id} at {idx}")
        except RaftError:
            pass
        self._after_input(lead, None)

    def _faults(self) -> None:
        """Random events of one tick during the faulty phase."""
        rng = self.rng
        k = self.knobs
        ids = list(self.nodes)
        if k.partition and rng.random() < k.partition:
            kind = rng.random()
            if kind < 0.4:
                side = set(rng.sample(ids, rng.randint(1, max(1, len(ids) // 2))))
                for a in ids:
                    for b in ids:
                        if (a in side) != (b in side):
                            self.blocked.add((a, b))
            elif kind < 0.7:
                lead = self.leader()
                victim = lead.id if lead is not None else rng.choice(ids)
                for b in ids:
                    if b != victim:
                        self.blocked.add((victim, b))
                        if rng.random() < 0.8:
                            self.blocked.add((b, victim))
            else:
                for _ in range(rng.randint(1, len(ids))):
                    a, b = rng.sample(ids, 2)
                    self.blocked.add((a, b))
        if self.blocked and rng.random() < k.heal:
            self.blocked.clear()
        if k.crash and rng.random() < k.crash:
            live = self.live()
            if live:
                self._crash(rng.choice(live))
        if k.blackout and rng.random() < k.blackout:
            self.note("the whole cluster loses power")
            self.stats.blackouts += 1
            for n in self.live():
                self._crash(n)
        down = [n for n in self.nodes.values() if n.raw is None]
        if down and rng.random() < k.restart:
            self._start(rng.choice(down))
        if k.transfer and rng.random() < k.transfer:
            lead = self.leader()
            if lead is not None:
                assert lead.raw is not None
                others = [v for v in lead.raw.conf.voters if v != lead.id]
                if others:
                    try:
                        lead.raw.transfer_leader(rng.choice(others))
                        self.stats.transfers += 1
                    except RaftError:
                        pass
                    self._after_input(lead, None)
        if k.member and rng.random() < k.member:
            self._membership_change()

    def _kill_fresh_leader(self) -> None:
        # Figure 8 of the Raft paper needs leaders that die after sending
        # old entries but before an entry of their own term is committed.
        if self.rng.random() >= self.knobs.kill_fresh_leader:
            return
        lead = self.leader()
        if lead is not None and lead.raw is not None:
            log = lead.raw.raft.log
            if log.term(log.committed) != lead.raw.term:
                self.note(f"fresh leader {lead.id} killed")
                self._crash(lead)

    def _calm(self) -> None:
        """Calm spell: restart crashed nodes now and then; no new faults."""
        down = [n for n in self.nodes.values() if n.raw is None]
        if down and self.rng.random() < 0.2:
            self._start(self.rng.choice(down))

    def _clients(self) -> None:
        """Random client requests of one time unit."""
        rng = self.rng
        k = self.knobs
        if rng.random() < k.propose:
            lead = self.leader()
            live = self.live()
            n = (
                lead
                if lead is not None and rng.random() < 0.8
                else (rng.choice(live) if live else None)
            )
            if n is not None:
                self._propose(n)
        if k.read and rng.random() < k.read:
            live = self.live()
            if live:
                self._issue_read(rng.choice(live))

    def _tick_all(self) -> None:
        live = self.live()
        self.rng.shuffle(live)
        for n in live:
            if n.raw is not None:
                n.raw.tick()
                self._after_input(n, None)

    def _unit(self, faults: bool, clients: bool) -> None:
        if self.now % TICK == 0:
            self._tick_all()
            wb = self.knobs.writeback
            if wb and (self.now // TICK) % wb == 0:
                for n in self.nodes.values():
                    n.storage.sync()
            if faults:
                if self.now >= self.epoch_end:
                    # Storms alternate with calm spells in which the group can
                    # make progress (and lagging nodes need snapshots).
                    self.storm = not self.storm or self.rng.random() < 0.3
                    self.epoch_end = self.now + self.rng.randint(10, 80) * TICK
                    if not self.storm:
                        self.blocked.clear()
                if self.storm:
                    self._faults()
                else:
                    self._calm()
        if clients:
            self._clients()
        if faults and self.storm and self.knobs.kill_fresh_leader:
            self._kill_fresh_leader()
        self._deliver_due()
        self.now += 1

    def run_ticks(self, ticks: int, faults: bool = False, clients: bool = False) -> None:
        """Advance simulated time by ``ticks`` ticks."""
        for _ in range(ticks * TICK):
            self._unit(faults, clients)

    # -- phases ------------------------------------------------------------------------
    def heal(self) -> None:
        """End every fault: reconnect, restart, and stop losing or delaying messages."""
        self.note("heal")
        self.blocked.clear()
        self.healthy = True
        self.no_faults = True
        self.knobs.drop = 0.0
        self.knobs.dup = 0.0
        for n in self.nodes.values():
            if n.raw is None:
                self._start(n)
        self._shut_down_removed()

    def _shut_down_removed(self) -> None:
        # Without PreVote or CheckQuorum nothing stops a removed server that
        # missed its removal from disrupting the group (dissertation §4.2.3),
        # so it is shut down as an operator would (and started if re-added).
        if self.pre_vote or self.check_quorum:
            return
        members = self.committed_conf.members()
        for n in self.nodes.values():
            if n.raw is not None and n.id not in members:
                self._crash(n, power_cut=False)
                self.note(f"node {n.id} shut down: not in {self.committed_conf}")
            elif n.raw is None and n.id in members:
                self._start(n)

    def _stable_leader(self) -> _Node | None:
        lead = self.leader()
        if lead is None:
            return None
        raw = lead.raw
        assert raw is not None
        r = raw.raft
        if (
            r.log.term(r.log.committed) != r.term
            or r.pending_conf_index > r.log.committed
            or r.lead_transferee != NONE
            or lead.id not in raw.conf.voters
        ):
            return None
        for nid in raw.conf.members():
            m = self.nodes[nid].raw
            if m is None or m.term > raw.term:
                return None
        return lead

    def check_liveness(self) -> None:
        """After healing: a stable leader soon, and healthy-period writes commit everywhere."""
        et = self.election_tick
        bound = 30 * et
        start = self.now
        stable_for = 0
        last: tuple[int, int] | None = None
        while True:
            lead = self._stable_leader()
            key = (lead.id, lead.raw.term) if lead is not None and lead.raw is not None else None
            stable_for = stable_for + 1 if key is not None and key == last else 0
            last = key
            if stable_for >= 2 * et:
                break
            if self.now - start > bound * TICK:
                raise self.fail(f"liveness: no stable leader within {bound} ticks of healing")
            self.run_ticks(1)
            self._shut_down_removed()
        assert lead is not None and lead.raw is not None
        lead_term = lead.raw.term
        props: list[tuple[int, int, bytes]] = []
        for _ in range(5):
            p = self._propose(lead)
            if p is None:
                raise self.fail(f"liveness: stable leader {lead.id} refused a proposal")
            props.append(p)
            self.run_ticks(1)
            if self.leader() is not lead or lead.raw.term != lead_term:
                raise self.fail("liveness: leadership changed during the healthy period")
        # a read on every member must also be answered
        members = lead.raw.conf.members()
        want_reads = []
        for nid in members:
            n = self.nodes[nid]
            before = self.stats.reads_served
            self._issue_read(n)
            want_reads.append((n, b"r%d" % self.read_seq, before))
        # A backlog left by the storm may replicate one entry per message and
        # one message in flight: allow a (generous) tick per entry on top.
        backlog = lead.raw.raft.log.last_index() - min(self.nodes[nid].sm_index for nid in members)
        allowed = 10 * et + backlog
        deadline = self.now + allowed * TICK
        while True:
            last_index = max(p[0] for p in props)
            done = all(self.nodes[nid].sm_index >= last_index for nid in members)
            reads_done = all(
                self.reads[ctx].answers > 0 or self.nodes[n.id].raw is None
                for n, ctx, _ in want_reads
            )
            if done and reads_done:
                break
            if self.now > deadline:
                behind = {nid: self.nodes[nid].sm_index for nid in members}
                raise self.fail(
                    f"liveness: writes up to {last_index} (or reads) not done on all of "
                    f"{list(members)} within {allowed} ticks: applied {behind}, "
                    f"reads answered {[self.reads[c].answers for _, c, _ in want_reads]}"
                )
            self.run_ticks(1)
        for index, term, data in props:
            if self.applied[index] != (term, int(EntryType.NORMAL), data):
                raise self.fail(f"liveness: healthy write {data!r} at {index} was lost")
        self.stats.liveness_ticks = (self.now - start) // TICK
        self.stats.election_ticks = self.election_tick

    def run(self) -> SimStats:
        """Run the whole scenario; raises Violation on any failed property."""
        try:
            self.run_ticks(self.params.ticks, faults=True, clients=True)
            self.heal()
            self.check_liveness()
        except Violation:
            raise
        except Exception as e:
            raise self.fail(f"unexpected {type(e).__name__}: {e}") from e
        self.stats.digest = self._trace.hexdigest()
        return self.stats


def run_seed(params: SimParams) -> SimStats:
    """Run one scenario."""
    return Simulation(params).run()


def seed_params(
    seed: int, nodes: int | None = None, membership: bool | None = None, ticks: int = 500
) -> SimParams:
    """The mix used by bulk runs: seeds alternate over 3/5 nodes and membership on/off."""
    return SimParams(
        seed,
        nodes if nodes is not None else (3 if seed % 2 == 0 else 5),
        membership if membership is not None else (seed // 2) % 2 == 1,
        ticks,
    )


def _run_one(params: SimParams) -> tuple[SimParams, str | None, float]:
    t0 = time.perf_counter()
    try:
        run_seed(params)
        return params, None, time.perf_counter() - t0
    except Violation as v:
        return params, str(v), time.perf_counter() - t0


def run_many(
    params: list[SimParams], jobs: int = 1
) -> Iterator[tuple[SimParams, str | None, float]]:
    """Run many scenarios, on ``jobs`` processes; yields (params, failure, seconds)."""
    if jobs <= 1:
        for p in params:
            yield _run_one(p)
        return
    ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    with ctx.Pool(jobs) as pool:
        yield from pool.imap_unordered(_run_one, params, chunksize=8)


def main(argv: list[str] | None = None) -> int:
    """Command line: replay one seed, or run many."""
    p = argparse.ArgumentParser(prog="python -m eraft_twisted.testing.sim", description=__doc__)
    p.add_argument("--seed", type=int, help="run this one seed (verbose)")
    p.add_argument("--seeds", type=int, default=0, help="run this many seeds")
    p.add_argument("--start", type=int, default=0, help="first seed of --seeds")
    p.add_argument("--nodes", type=int, help="3 or 5 (default: alternate)")
    p.add_argument("--membership", action="store_true", default=None)
    p.add_argument("--no-membership", dest="membership", action="store_false")
    p.add_argument("--ticks", type=int, default=SimParams.ticks)
    p.add_argument("-v", "--verbose", action="store_true", help="dump node state on failure")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    if args.seed is not None:
        params = SimParams(args.seed, args.nodes or 3, bool(args.membership), args.ticks)
        t0 = time.perf_counter()
        sim = Simulation(params)
        try:
            stats = sim.run()
        except Violation as v:
            print(f"VIOLATION: {v}")
            if args.verbose:
                print(sim.describe())
            return 1
        print(f"ok seed={args.seed} in {time.perf_counter() - t0:.2f}s: {stats.line()}")
        return 0
    n = args.seeds or 100
    todo = [
        seed_params(s, args.nodes, args.membership, args.ticks)
        for s in range(args.start, args.start + n)
    ]
    t0 = time.perf_counter()
    failures = 0
    done = 0
    for _params, failure, _ in run_many(todo, args.jobs):
        done += 1
        if failure is not None:
            failures += 1
            print(f"VIOLATION: {failure}", flush=True)
        if done % 1000 == 0:
            print(
                f"{done}/{n} seeds, {failures} failed, {time.perf_counter() - t0:.0f}s", flush=True
            )
    elapsed = time.perf_counter() - t0
    print(
        f"{n} seeds ({args.start}..{args.start + n - 1}), {failures} failed, "
        f"{elapsed:.1f}s on {args.jobs} processes"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
