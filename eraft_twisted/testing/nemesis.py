"""The nemesis of a single-group campaign: random faults against a
:class:`~.kvgroup.KVGroup` of real eraftkv processes, Jepsen style.

Partitions (both ways or one way, dropping or resetting), bridges, slow
links, kill -9 of the leader or a random node (sometimes all) and restart,
SIGSTOP/SIGCONT, leader transfers, snapshots and membership changes.

The rest of the harness: the fault-injecting proxy (:mod:`.proxy`), the
processes (:mod:`.procs`, :mod:`.kvgroup`), the clients
(:mod:`.workload`), a whole campaign (:mod:`.campaign`) and the crash
durability loop (:mod:`.crashloop`).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable

from .harness import Background, EventLog
from .kvgroup import KVGroup
from .procs import NodeProcess, try_command

__all__ = [
    "FAULTS",
    "NETWORK_FAULTS",
    "Nemesis",
]

FAULTS = (
    "partition",
    "oneway",
    "bridge",
    "slow",
    "kill",
    "pause",
    "transfer",
    "snapshot",
    "member",
)
NETWORK_FAULTS = ("partition", "oneway", "bridge", "slow")


class Nemesis(Background):
    """A thread that injects one random fault at a time, holds it, heals it.

    ``faults`` picks among :data:`FAULTS`. Every action is noted in ``log``
    with its time.
    """

    def __init__(
        self,
        cluster: KVGroup,
        faults: Iterable[str],
        rng: random.Random,
        interval: tuple[float, float] = (1.0, 3.0),
        duration: tuple[float, float] = (2.0, 6.0),
        log: EventLog | None = None,
    ) -> None:
        super().__init__("nemesis", log or EventLog())
        self.cluster = cluster
        self.faults = list(faults)
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {FAULTS}")
        if cluster.net is None and set(self.faults) & set(NETWORK_FAULTS):
            raise ValueError("network faults need a cluster with proxies")
        self.rng = rng
        self.interval = interval
        self.duration = duration
        self.counts: Counter[str] = Counter()

    def note(self, text: str) -> None:
        self.log.note(text)

    def _sleep(self, span: tuple[float, float]) -> bool:
        return not self._stop.wait(self.rng.uniform(*span))

    def loop(self) -> None:
        while self._sleep(self.interval):
            fault = self.rng.choice(self.faults)
            undo = getattr(self, "_" + fault)()
            self.counts[fault] += 1
            if undo is not None:
                self._sleep(self.duration)
                undo()

    def _victim(self) -> NodeProcess:
        """The leader half of the time (if there is one), else a random node."""
        up = [n for n in self.cluster.nodes if n.alive and not n.paused]
        if self.rng.random() < 0.5:
            leader = self.cluster.current_leader()
            if leader is not None:
                return leader
        return self.rng.choice(up or self.cluster.nodes)

    def _running(self) -> NodeProcess:
        return self.rng.choice([n for n in self.cluster.nodes if n.alive and not n.paused])

    # -- network ---------------------------------------------------------
    def _heal_net(self) -> None:
        assert self.cluster.net is not None
        self.cluster.net.heal()
        self.note("heal network")

    def _partition(self) -> Callable[[], None]:
        net = self.cluster.net
        assert net is not None
        ids = list(range(self.cluster.n))
        victim = self._victim().node_id
        if self.rng.random() < 0.5:
            minority = {victim}
        else:
            self.rng.shuffle(ids)
            minority = set(ids[: (self.cluster.n - 1) // 2]) or {victim}
        majority = [i for i in range(self.cluster.n) if i not in minority]
        mode = self.rng.choice(["drop", "drop", "reset"])
        net.partition([sorted(minority), majority], mode)
        self.note(f"partition {sorted(minority)} | {majority} ({mode})")
        return self._heal_net

    def _oneway(self) -> Callable[[], None]:
        """The victim (often the leader) cannot send to the others, or hear them."""
        net = self.cluster.net
        assert net is not None
        victim = self._victim().node_id
        others = [i for i in range(self.cluster.n) if i != victim]
        outgoing = self.rng.random() < 0.5
        for other in others:
            if outgoing:
                net.cut(victim, other)
            else:
                net.cut(other, victim)
        self.note(f"one-way: {victim} {'cannot send to' if outgoing else 'cannot hear'} {others}")
        return self._heal_net

    def _bridge(self) -> Callable[[], None]:
        """A non-transitive partition: two nodes cannot talk, both still reach the rest."""
        net = self.cluster.net
        assert net is not None
        victim = self._victim().node_id
        other = self.rng.choice([i for i in range(self.cluster.n) if i != victim])
        mode = self.rng.choice(["drop", "reset"])
        net.cut(victim, other, mode)
        net.cut(other, victim, mode)
        self.note(f"bridge: {victim} x {other} ({mode})")
        return self._heal_net

    def _slow(self) -> Callable[[], None]:
        net = self.cluster.net
        assert net is not None
        ms = self.rng.choice([20, 50, 100, 200])
        net.slow(ms)
        self.note(f"slow network: +{ms} ms per link")
        return self._heal_net

    # -- processes -------------------------------------------------------
    def _kill(self) -> Callable[[], None]:
        if self.rng.random() < 0.15:
            victims = list(self.cluster.nodes)
        else:
            victims = [self._victim()]
        for node in victims:
            node.kill()
        self.note(f"kill -9 {[n.node_id for n in victims]}")

        def restart() -> None:
            for node in victims:
                if not node.alive:
                    node.start()
            self.note(f"restart {[n.node_id for n in victims]}")
            for node in victims:
                node.wait_up()

        return restart

    def _pause(self) -> Callable[[], None]:
        node = self._victim()
        node.pause()
        self.note(f"SIGSTOP {node.node_id}")

        def resume() -> None:
            node.resume()
            self.note(f"SIGCONT {node.node_id}")

        return resume

    def _transfer(self) -> None:
        node = self._running()
        target = self.rng.randrange(self.cluster.n)
        reply = try_command(node.resp_port, "RAFT.TRANSFER_LEADER", str(target))
        self.note(f"transfer leader to {target} via {node.node_id}: {reply[:60]!r}")

    def _member(self) -> Callable[[], None] | None:
        """Remove a member (sometimes the leader), wipe it, and start it again
        with ``--join``: it comes back as a learner and is promoted.

        A rejoined node announces its own listening address, so from then on
        the others reach it directly, not through the proxy: network faults
        on links into it no longer apply (keep this fault out of network mixes).
        """
        cluster = self.cluster
        leader = cluster.current_leader()
        if leader is None:
            self.note("member change skipped: no leader")
            return None
        voters = cluster.raft_info(leader).get("raft_voters", "").split(",")
        if len(voters) < cluster.n:
            self.note(f"member change skipped: voters are {voters}")
            return None
        node = leader if self.rng.random() < 0.3 else self.rng.choice(cluster.nodes)
        k = node.node_id
        reply = try_command(leader.resp_port, "RAFT.NODE", "REMOVE", str(k), timeout=5)
        self.note(f"remove node {k}: {reply[:60]!r}")
        if not cluster.wait_voters(lambda v: str(k) not in v, 10):
            self.note(f"node {k} is still a member")
            return None
        cluster.rejoin(node)
        self.note(f"node {k} wiped and restarted with --join")

        def promoted() -> None:
            if cluster.wait_voters(lambda v: str(k) in v, 30):
                self.note(f"node {k} is a voter again")
            else:
                self.note(f"node {k} not promoted within 30 s")

        return promoted

    def _snapshot(self) -> None:
        node = self._running()
        reply = try_command(node.resp_port, "RAFT.SNAPSHOT")
        self.note(f"snapshot on {node.node_id}: {reply[:60]!r}")
