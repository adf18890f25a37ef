"""What a simulated scenario is made of: its parameters, the rates drawn
from its seed, its nodes, and how a failed property is reported."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from typing import Protocol

from ..raft.rawnode import RawNode
from ..raft.types import Snapshot
from .powercut import ZERO, PowerCutStorage

TICK = 10
"""Simulated time units per tick; message delays are counted in units."""

SNAPSHOT_DATA = struct.Struct(">q8s")
"""A simulated snapshot's data: the (index, digest) of the state it holds."""


def decode_snapshot(snap: Snapshot) -> tuple[int, bytes]:
    """The (index, digest) of the state machine held by ``snap``."""
    if snap.is_empty():
        return 0, ZERO
    index, digest = SNAPSHOT_DATA.unpack(snap.data)
    return index, digest


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


class SimNode:
    """One simulated server: what it synced to its disk survives crashes, the rest does not."""

    def __init__(self, nid: int, storage: PowerCutStorage, persistent_sm: bool) -> None:
        self.id = nid
        self.storage = storage
        self.raw: RawNode | None = None
        """The running Raft node; None while the server is down."""
        self.incarnation = 0
        self.persistent_sm = persistent_sm
        self.sm_index = 0
        self.sm_hash = ZERO
        self.reads: list[tuple[int, bytes]] = []
        """(read index, context) of answered reads waiting for the state machine."""
        self.stamped = 0
        self.last_commit = 0
        self.was_leader = False
        self.checks = 0
        self.commit_deferred = False


@dataclass
class PendingRead:
    """A linearizable read, with what it must see."""

    node: int
    incarnation: int
    commit_at_issue: int
    leader_term_at_issue: int
    answers: int = 0


@dataclass(frozen=True)
class ClusterSetup:
    """The Raft configuration of every node, drawn from the seed."""

    election_tick: int
    heartbeat_tick: int
    max_size: int
    max_inflight: int
    pre_vote: bool
    check_quorum: bool

    @classmethod
    def draw(cls, rng: random.Random) -> ClusterSetup:
        """Draw a configuration (the order of draws is part of every seed's schedule)."""
        election_tick = rng.choice((5, 10, 10, 20))
        heartbeat_tick = rng.choice((1, 1, 2, 3))
        max_size = rng.choice((1, 200, 1024, 48 * 1024))
        max_inflight = rng.choice((1, 2, 4, 256))
        pre_vote = rng.random() < 0.85
        check_quorum = rng.random() < 0.85
        return cls(election_tick, heartbeat_tick, max_size, max_inflight, pre_vote, check_quorum)


@dataclass
class Knobs:
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

    @classmethod
    def draw(cls, rng: random.Random, membership: bool) -> Knobs:
        """Draw the rates (the order of draws is part of every seed's schedule)."""
        k = cls()
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
        k.member = rng.choice((0.01, 0.03, 0.08)) if membership else 0.0
        k.unreachable = rng.choice((0.0, 0.5, 1.0))
        k.kill_fresh_leader = rng.choice((0.0, 0.0, 0.03, 0.1))
        k.snap_every = rng.choice((3, 10, 20, 50))
        k.snap_lag = rng.choice((0, 0, 2))
        return k


class SimContext(Protocol):
    """What the checkers need from the running simulation."""

    stats: SimStats

    def fail(self, what: str) -> Violation:
        """The exception for a failed property at the current time."""
        ...

    def note(self, what: str) -> None:
        """Remember an event for the failure report."""
        ...

    def mix(self, *vals: int) -> None:
        """Fold values into the run's digest."""
        ...

    def live(self) -> list[SimNode]:
        """Running nodes, in id order."""
        ...
