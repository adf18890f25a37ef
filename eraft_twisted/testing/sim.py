"""Deterministic simulation of a Raft group over a faulty network.

One seeded :class:`random.Random` drives everything: message loss, delay,
duplication and reordering, partitions (also one-way) and their healing
(:mod:`.sim_network`), crashes, power cuts and restarts
(:mod:`.sim_faults`), client writes and linearizable reads, leader
transfers, snapshots with log compaction and, optionally, membership
changes. Raft's safety properties are checked after every input to every
node (:mod:`.sim_invariants`); at the end faults heal and liveness is
checked (:mod:`.sim_liveness`). A scenario is exactly reproducible from
``(seed, nodes, membership, ticks)``; a violation carries a one-line
replay command.

This module is the runner: it boots nodes, handles each Ready in the
required order (persist, sync, send, apply, advance), makes client
requests and advances simulated time.

Command line::

    python -m eraft_twisted.testing.sim --seed 1234 --nodes 5 --membership
    python -m eraft_twisted.testing.sim --seeds 20000 --jobs 2
"""

from __future__ import annotations

import hashlib
import random
import struct
import sys

from ..raft.core import Config
from ..raft.rawnode import RawNode
from ..raft.types import ConfState, Message, MessageType, RaftError, Ready, Role
from .powercut import PowerCutStorage, sends_first
from .sim_faults import FaultSchedule
from .sim_invariants import SafetyChecker
from .sim_liveness import check_liveness
from .sim_network import SimNetwork
from .sim_types import (
    SNAPSHOT_DATA,
    TICK,
    ClusterSetup,
    Knobs,
    SimNode,
    SimParams,
    SimStats,
    Violation,
    decode_snapshot,
)

__all__ = [
    "TICK",
    "SimNode",
    "SimParams",
    "SimStats",
    "Simulation",
    "Violation",
    "main",
    "run_seed",
    "seed_params",
]

MT = MessageType


class Simulation:
    """N RawNodes over a simulated network, with safety checked after every step."""

    def __init__(self, params: SimParams) -> None:
        self.params = params
        self.rng = random.Random(params.seed)
        self.now = 0
        self.stats = SimStats()
        self.events: list[str] = []
        self._trace = hashlib.blake2b(digest_size=8)
        # Configuration of the cluster, drawn from the seed.
        self.setup = ClusterSetup.draw(self.rng)
        self.knobs = Knobs.draw(self.rng, params.membership)
        self.max_ids = params.nodes + (2 if params.membership else 0)
        self.network = SimNetwork(self.rng, self.knobs)
        self.faults = FaultSchedule(self)
        ids = tuple(range(1, params.nodes + 1))
        self.checker = SafetyChecker(self, ConfState(ids))
        self.nodes: dict[int, SimNode] = {}
        for nid in ids:
            self.add_node(nid, ConfState(ids))
        self.read_seq = 0
        self.prop_seq = 0

    # -- nodes ---------------------------------------------------------------
    def _config(self, nid: int, applied: int) -> Config:
        s = self.setup
        return Config(
            nid,
            election_tick=s.election_tick,
            heartbeat_tick=s.heartbeat_tick,
            max_size_per_msg=s.max_size,
            max_inflight_msgs=s.max_inflight,
            pre_vote=s.pre_vote,
            check_quorum=s.check_quorum,
            applied=applied,
        )

    def add_node(self, nid: int, conf: ConfState) -> SimNode:
        """Create a server with an empty disk (initial membership ``conf``) and start it."""
        n = SimNode(nid, PowerCutStorage(conf), self.rng.random() < 0.5)
        self.nodes[nid] = n
        self.start(n)
        return n

    def start(self, n: SimNode) -> None:
        """Boot ``n`` from what its disk holds."""
        st = n.storage
        snap = st.snapshot()
        if not n.persistent_sm or n.sm_index < snap.meta.index:
            n.sm_index, n.sm_hash = decode_snapshot(snap)
        n.raw = RawNode(self._config(n.id, n.sm_index), st, random.Random(self.rng.getrandbits(64)))
        n.incarnation += 1
        n.reads = []
        n.stamped = 0
        n.was_leader = False
        n.commit_deferred = False
        n.last_commit = n.raw.raft.log.committed
        self.checker.check_node(n, None)

    def live(self) -> list[SimNode]:
        """Running nodes, in id order."""
        return [n for n in self.nodes.values() if n.raw is not None]

    def leader(self) -> SimNode | None:
        """The running leader with the highest term, if any."""
        best: SimNode | None = None
        best_term = -1
        for n in self.live():
            assert n.raw is not None
            if n.raw.role == Role.LEADER and n.raw.term > best_term:
                best, best_term = n, n.raw.term
        return best

    # -- reporting -------------------------------------------------------------
    def describe(self) -> str:
        """The state of every node, for a failure report."""
        s = self.setup
        lines = [
            f"  knobs: election_tick={s.election_tick} heartbeat_tick={s.heartbeat_tick} "
            f"max_size={s.max_size} max_inflight={s.max_inflight} pre_vote={s.pre_vote} "
            f"check_quorum={s.check_quorum} {self.knobs}"
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

    def mix(self, *vals: int) -> None:
        """Fold values into the run's digest (equal digests: the same run)."""
        self._trace.update(struct.pack(f">{len(vals)}q", *vals))

    # -- delivery ----------------------------------------------------------------
    def _deliver_due(self) -> None:
        for _, _, m, inc, original in self.network.due(self.now):
            src = self.nodes.get(m.frm)
            dst = self.nodes.get(m.to)
            ok = self.network.passes(m, dst is not None and dst.raw is not None)
            if src is not None and src.raw is not None and src.incarnation == inc and original:
                k = self.knobs
                if m.type == MT.SNAPSHOT:
                    src.raw.report_snapshot(m.to, ok)
                    self.after_input(src, None)
                elif not ok and k.unreachable and self.rng.random() < k.unreachable:
                    src.raw.report_unreachable(m.to)
                    self.after_input(src, None)
            if not ok:
                self.stats.dropped += 1
                continue
            assert dst is not None and dst.raw is not None
            self.stats.messages += 1
            self.mix(int(m.type), m.frm, m.to, m.term, m.index)
            try:
                dst.raw.step(m)
            except RaftError as e:
                raise self.fail(
                    f"step({m.type.name}) from {m.frm} on node {m.to} raised {e!r}"
                ) from e
            self.after_input(dst, m)

    def _send_all(self, n: SimNode, rd: Ready) -> None:
        for m in rd.messages:
            if m.type == MT.SNAPSHOT:
                self.stats.snapshots_sent += 1
            self.network.send(m, n.incarnation, self.now)

    # -- Ready handling ------------------------------------------------------------
    def after_input(self, n: SimNode, m: Message | None) -> None:
        """Stamp read answers, handle every Ready, then check the invariants."""
        self.stats.steps += 1
        raw = n.raw
        if raw is None:
            return
        rs = raw.raft.read_states
        if len(rs) > n.stamped:
            term = m.term if m is not None and m.type == MT.READ_INDEX_RESP else raw.term
            for r in rs[n.stamped :]:
                self.checker.read_answered(n, r.request_ctx, r.index, term)
            n.stamped = len(rs)
        # Check before the Ready: handling it may compact what the check reads.
        self.checker.check_node(n, m)
        self._handle_ready(n)

    def _sync_ready(self, n: SimNode, rd: Ready) -> bool:
        """Whether the writes of ``rd`` are synced before anything else is done."""
        return rd.must_sync

    def _handle_ready(self, n: SimNode) -> None:
        raw = n.raw
        assert raw is not None
        st = n.storage
        rng = self.rng
        k = self.knobs
        check = self.checker
        crashing = bool(k.crash_in_ready) and not self.faults.over
        while raw.has_ready():
            rd = raw.ready()
            n.stamped = 0
            early = k.leader_sends_first and sends_first(raw, rd, st.durable.hard_state)
            if early:
                self._send_all(n, rd)
            # 1. persist, then sync if the Ready says so
            if rd.snapshot is not None:
                check.check_snapshot_meta(n, rd.snapshot)
                st.apply_snapshot(rd.snapshot)
            if rd.entries:
                st.append(rd.entries)
                check.check_persisted(n, rd.entries)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
            if (crashing and rng.random() < k.crash_in_ready) or (
                early and rd.must_sync and not self.faults.over and rng.random() < k.cut_early
            ):
                self.note(f"node {n.id} loses power before its sync (sent first: {early})")
                self.faults.crash(n)
                return
            if self._sync_ready(n, rd):
                st.sync()
            if n.commit_deferred:
                n.commit_deferred = False
                check.check_node(n, None, synced=True)
            if crashing and rng.random() < k.crash_in_ready:
                self.faults.crash(n)
                return
            # 2. send
            if not early:
                self._send_all(n, rd)
            if crashing and rng.random() < k.crash_in_ready:
                self.faults.crash(n)
                return
            # 3. apply
            sm_before = n.sm_index
            if rd.snapshot is not None:
                check.install(n, rd.snapshot)
            for e in rd.committed_entries:
                check.apply(n, e)
            if n.persistent_sm and n.sm_index != sm_before:
                st.save_state_machine(n.sm_index, n.sm_hash)
            # 4. reads
            for r in rd.read_states:
                n.reads.append((r.index, r.request_ctx))
            raw.advance(rd)
            check.serve_reads(n)
            self._maybe_snapshot(n)

    def _maybe_snapshot(self, n: SimNode) -> None:
        st = n.storage
        if n.sm_index - st.snapshot().meta.index < self.knobs.snap_every:
            return
        assert n.raw is not None
        data = SNAPSHOT_DATA.pack(n.sm_index, n.sm_hash)
        st.create_snapshot(n.sm_index, n.raw.conf_at(n.sm_index), data)
        st.compact(max(n.sm_index - self.knobs.snap_lag, st.first_index() - 1))
        self.stats.compactions += 1

    # -- clients -------------------------------------------------------------------
    def propose(self, n: SimNode) -> tuple[int, int, bytes] | None:
        """Propose a fresh payload on ``n``: its (index, term, data), or None if refused."""
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
        self.after_input(n, None)
        return (index, term, data) if index else None

    def issue_read(self, n: SimNode) -> None:
        """Start a linearizable read on ``n``."""
        assert n.raw is not None
        self.read_seq += 1
        ctx = b"r%d" % self.read_seq
        self.checker.read_issued(n, ctx)
        try:
            n.raw.read_index(ctx)
        except RaftError:
            pass
        self.after_input(n, None)

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
                self.propose(n)
        if k.read and rng.random() < k.read:
            live = self.live()
            if live:
                self.issue_read(rng.choice(live))

    # -- time ----------------------------------------------------------------------
    def _tick_all(self) -> None:
        live = self.live()
        self.rng.shuffle(live)
        for n in live:
            if n.raw is not None:
                n.raw.tick()
                self.after_input(n, None)

    def _unit(self, faults: bool, clients: bool) -> None:
        if self.now % TICK == 0:
            self._tick_all()
            wb = self.knobs.writeback
            if wb and (self.now // TICK) % wb == 0:
                for n in self.nodes.values():
                    n.storage.sync()
            if faults:
                self.faults.tick()
        if clients:
            self._clients()
        if faults:
            self.faults.after_clients()
        self._deliver_due()
        self.now += 1

    def run_ticks(self, ticks: int, faults: bool = False, clients: bool = False) -> None:
        """Advance simulated time by ``ticks`` ticks."""
        for _ in range(ticks * TICK):
            self._unit(faults, clients)

    def heal(self) -> None:
        """End every fault: reconnect, restart, and stop losing or delaying messages."""
        self.faults.heal()

    def check_liveness(self) -> None:
        """After healing: a stable leader soon, and healthy-period writes commit everywhere."""
        check_liveness(self)

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


def main(argv: list[str] | None = None) -> int:
    """Command line: replay one seed, or run many (see :mod:`.sim_cli`)."""
    from .sim_cli import main as cli

    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())
