"""The nemesis of a sharded-cluster campaign, and the range mover.

:class:`ClusterNemesis` is a thread that injects one fault at a time into a
:class:`~.cluster_procs.ShardedCluster`, holds it, and undoes it:

* ``kill``: ``kill -9`` of a kv leader, a kv follower, a meta node or the
  router (sometimes a whole kv group or the whole meta group), restarted on
  the same data when the fault ends;
* ``term``: the same with SIGTERM (a graceful stop), then a restart;
* ``copykill``: wait until a group is copying a range in (at least one
  chunk installed, not done), then ``kill -9`` or SIGTERM the leader of that
  group or of the group it copies from; restart it later;
* ``pause``: SIGSTOP, then SIGCONT;
* ``partition``: inside one kv group (or, less often, the meta group): one
  node (often the leader) cut off from the others, dropping or resetting,
  both ways or one way;
* ``transfer``: ``RAFT.TRANSFER_LEADER`` on a kv node (quick, not held);
* ``snapshot``: ``RAFT.SNAPSHOT`` on a kv node (quick, not held);
* ``skew``: move one process's clock (libfaketime, so the cluster must be
  built with ``skew``) to a random offset within ``MAX_SKEW`` seconds
  ahead or behind; it stays there until another skew moves it, or the
  final heal.

Process faults, partitions and clock skews come from three nemesis
threads, so they overlap. :class:`Mover` moves random slot ranges between the groups through
the meta admin API without pause, so migrations are always in flight.

Every random choice is drawn from the seeded generator whatever the
cluster's state (the state only decides which process a choice names), so
a seed replays the same schedule. Everything done is logged with its time.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ..hashslot import SLOTS
from .cluster_procs import ShardedCluster
from .harness import Background, EventLog
from .kvgroup import KVGroup
from .procs import NodeProcess, raw_command, try_command

__all__ = [
    "PROCESS_FAULTS",
    "NETWORK_FAULTS",
    "CLOCK_FAULTS",
    "FAULTS",
    "ClusterNemesis",
    "Mover",
]

PROCESS_FAULTS = ("kill", "term", "copykill", "pause", "transfer", "snapshot")
NETWORK_FAULTS = ("partition",)
CLOCK_FAULTS = ("skew",)
FAULTS = PROCESS_FAULTS + NETWORK_FAULTS + CLOCK_FAULTS

MAX_SKEW = 5.0
"""Seconds a process's clock may be moved ahead of or behind real time."""

# Whose process a process fault hits, with weights.
# "kv-migrating": the leader of a group copying a range in, or of the group
# it copies from (the state decides; any group's leader if nothing moves).
ROLES = (("kv-leader", 3), ("kv-migrating", 2), ("kv-follower", 3), ("meta", 2), ("router", 1))


class ClusterNemesis(Background):
    """One fault at a time from ``faults``; ``problems`` collects processes
    that did not come back or exited on their own."""

    def __init__(
        self,
        cluster: ShardedCluster,
        faults: Iterable[str],
        rng: random.Random,
        log: EventLog,
        interval: tuple[float, float] = (0.5, 2.5),
        duration: tuple[float, float] = (1.5, 5.0),
        name: str = "nemesis",
    ) -> None:
        super().__init__(name, log)
        self.cluster = cluster
        self.faults = list(faults)
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {FAULTS}")
        self.rng = rng
        self.interval = interval
        self.duration = duration
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []
        self.down: set[int] = set()
        """ids of the processes this nemesis stopped (not yet restarted)"""

    def loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.interval)):
            fault = self.rng.choice(self.faults)
            hold = self.rng.uniform(*self.duration)  # drawn first: a seed replays
            undo = getattr(self, "_" + fault)()
            self.counts[fault] += 1
            if undo is not None:
                self._stop.wait(hold)
                undo()

    # -- choosing a victim -------------------------------------------------------------
    def _group(self) -> tuple[int, KVGroup]:
        gid = self.rng.choice(sorted(self.cluster.groups))
        return gid, self.cluster.groups[gid]

    def _victims(self) -> list[NodeProcess]:
        """Draw a role, a group, an index and "all of them?" (always all four,
        so the schedule does not depend on the cluster's state)."""
        role = self.rng.choice([r for r, w in ROLES for _ in range(w)])
        gid, group = self._group()
        k = self.rng.randrange(3)
        everyone = self.rng.random() < 0.1
        source = self.rng.random() < 0.5
        if role == "router":
            return [self.cluster.router]
        if role == "meta":
            return list(self.cluster.meta) if everyone else [self.cluster.meta[k]]
        if role == "kv-migrating":
            gid, group = self._migrating(gid, source)
        if everyone:
            return list(group.nodes)
        leader = group.current_leader()
        if role == "kv-leader":
            return [leader or group.nodes[k]]
        others = [n for n in group.nodes if n is not leader]
        return [others[k % len(others)]]

    def _migrating(self, gid: int, source: bool) -> tuple[int, KVGroup]:
        """The group pulling a range (or the one it pulls from, with
        ``source``) right now, else group ``gid``."""
        report = self.cluster.admin("GET", "/migrations", timeout=2.0) or {}
        for g in report.get("groups", []):
            incoming = g.get("incoming") or ""
            if "error" in g or not incoming:
                continue
            target = int(g["group"])
            # "lo-hi:g<src>@<num>,..."
            try:
                src = int(incoming.split(",")[0].split(":g")[1].split("@")[0])
            except (IndexError, ValueError):
                src = target
            pick = src if source and src in self.cluster.groups else target
            self.log.note(f"g{target} is pulling {incoming} ({g.get('copying')})")
            return pick, self.cluster.groups[pick]
        return gid, self.cluster.groups[gid]

    def _names(self, procs: list[NodeProcess]) -> str:
        return ",".join(self.cluster.label(p) for p in procs)

    def _restart(self, victims: list[NodeProcess], what: str) -> Callable[[], None]:
        def restart() -> None:
            for p in victims:
                if not p.alive:
                    p.start()
                self.down.discard(id(p))
            self.log.note(f"restart {self._names(victims)} (after {what})")
            for p in victims:
                try:
                    p.wait_up(60)
                except RuntimeError as e:
                    self.problems.append(
                        f"{self.cluster.label(p)} did not come back after {what}: {e}"
                    )
                    self.log.note(f"{self.cluster.label(p)} did not come back")

        return restart

    # -- process faults ----------------------------------------------------------------
    def _kill(self) -> Callable[[], None]:
        victims = self._victims()
        for p in victims:
            self.down.add(id(p))
            p.kill()
        self.log.note(f"kill -9 {self._names(victims)}")
        return self._restart(victims, "kill -9")

    def _term(self) -> Callable[[], None]:
        victims = self._victims()
        for p in victims:
            self.down.add(id(p))
            if p.alive and p.proc is not None:
                p.signal(signal.SIGCONT)
                p.proc.terminate()
        t0 = time.monotonic()
        for p in victims:
            assert p.proc is not None
            try:
                p.proc.wait(timeout=20)
            except Exception:
                self.problems.append(f"{self.cluster.label(p)} ignored SIGTERM for 20 s")
                p.kill()
        rcs = [p.proc.returncode if p.proc is not None else None for p in victims]
        self.log.note(
            f"SIGTERM {self._names(victims)}: exited {rcs} in {time.monotonic() - t0:.1f}s"
        )
        return self._restart(victims, "SIGTERM")

    def _copykill(self) -> Callable[[], None] | None:
        source = self.rng.random() < 0.5
        term = self.rng.random() < 0.3
        deadline = time.monotonic() + 10.0
        while not self._stop.is_set() and time.monotonic() < deadline:
            found = self._copying()
            if found is not None:
                target, src, what = found
                gid = src if source and src in self.cluster.groups else target
                leader = self.cluster.groups[gid].current_leader()
                if leader is None:
                    continue
                self.down.add(id(leader))
                if term:
                    leader.stop()
                else:
                    leader.kill()
                sig = "SIGTERM" if term else "kill -9"
                self.log.note(
                    f"{sig} {self.cluster.label(leader)}, leader of the "
                    f"{'source' if gid == src else 'target'} group, while g{target} copies {what}"
                )
                return self._restart([leader], f"{sig} mid-copy")
            time.sleep(0.05)
        self.log.note("copykill skipped: no range copying within 10 s")
        return None

    def _copying(self) -> tuple[int, int, str] | None:
        """(target group, source group, range) of a copy under way: some
        keys installed, not done."""
        for gid, group in self.cluster.groups.items():
            for node in group.nodes:
                if not node.alive or node.paused:
                    continue
                try:
                    raw = raw_command(node.resp_port, "INFO", "sharding", timeout=0.5)
                except OSError:
                    continue
                info = dict(line.partition(":")[::2] for line in raw.decode("latin-1").splitlines())
                if info.get("shard_leader") != "1":
                    continue
                incoming = info.get("shard_incoming", "").strip()
                for name, value in info.items():
                    if not name.startswith("migration_"):
                        continue
                    fields = dict(f.partition("=")[::2] for f in value.strip().split(","))
                    if fields.get("done") == "0" and int(fields.get("keys", "0")) > 0:
                        try:
                            src = int(incoming.split(",")[0].split(":g")[1].split("@")[0])
                        except (IndexError, ValueError):
                            src = gid
                        return gid, src, name[len("migration_") :].replace("_", "-")
                break
        return None

    def _pause(self) -> Callable[[], None]:
        victims = self._victims()
        for p in victims:
            p.pause()
        self.log.note(f"SIGSTOP {self._names(victims)}")

        def resume() -> None:
            for p in victims:
                if p.alive:
                    p.resume()
            self.log.note(f"SIGCONT {self._names(victims)}")

        return resume

    def _transfer(self) -> None:
        gid, group = self._group()
        via = self.rng.randrange(3)
        target = self.rng.randrange(3)
        node = group.nodes[via]
        if not node.alive or node.paused:
            self.log.note(f"transfer in group {gid} skipped: node {via} is down")
            return
        reply = try_command(node.resp_port, "RAFT.TRANSFER_LEADER", str(target))
        self.log.note(f"transfer g{gid} leader to {target} via {via}: {reply[:60]!r}")

    def _snapshot(self) -> None:
        gid, group = self._group()
        k = self.rng.randrange(3)
        node = group.nodes[k]
        if not node.alive or node.paused:
            return
        reply = try_command(node.resp_port, "RAFT.SNAPSHOT")
        self.log.note(f"snapshot on g{gid}n{k}: {reply[:60]!r}")

    # -- clock faults ------------------------------------------------------------------
    def _skew(self) -> None:
        clocks = self.cluster.clocks
        name = self.rng.choice(sorted(clocks)) if clocks else None
        offset = round(self.rng.uniform(-MAX_SKEW, MAX_SKEW), 3)
        if name is None:
            self.log.note("skew: the cluster runs on real clocks; skipped")
            return
        clocks[name].set(offset)
        self.log.note(f"skew: {name}'s clock moved to {offset:+.3f}s")

    # -- network faults ----------------------------------------------------------------
    def _partition(self) -> Callable[[], None]:
        """One node of a kv group (or, one time in five, of the meta group)
        cut off from the others of its group."""
        gid, group = self._group()
        meta = self.rng.random() < 0.2
        k = self.rng.randrange(3)
        leader_first = self.rng.random() < 0.5
        shape = self.rng.choice(["both", "both", "out", "in"])
        mode = self.rng.choice(["drop", "drop", "reset"])
        if meta:
            nodes: list[NodeProcess] = list(self.cluster.meta)
            name, net = "meta", self.cluster.meta_net
            leader: NodeProcess | None = self.cluster.meta_leader() if leader_first else None
        else:
            assert group.net is not None
            name, net, nodes = f"g{gid}", group.net, group.nodes
            leader = group.current_leader() if leader_first else None
        v = (leader or nodes[k]).node_id
        others = [i for i in range(len(nodes)) if i != v]
        for o in others:
            if shape in ("both", "out"):
                net.cut(v, o, mode)
            if shape in ("both", "in"):
                net.cut(o, v, mode)
        self.log.note(f"partition {name}: {v} cut off from {others} ({shape}, {mode})")

        def heal() -> None:
            net.heal()
            self.log.note(f"heal {name} network")

        return heal


class Mover(Background):
    """A thread moving random slot ranges between the groups, one after the
    other: post a move, wait (a while) for the data to move, post the next."""

    def __init__(
        self,
        cluster: ShardedCluster,
        rng: random.Random,
        log: EventLog,
        max_slots: int = 4096,
        wait: float = 20.0,
    ) -> None:
        super().__init__("mover", log)
        self.cluster = cluster
        self.rng = rng
        self.max_slots = max_slots
        self.wait = wait
        self.committed = 0
        self.completed = 0
        self.refused = 0
        self.last_num = 0

    def loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(0.2, 1.5)):
            size = self.rng.randint(1, self.max_slots)
            lo = self.rng.randrange(SLOTS - size + 1)
            self.move(lo, lo + size - 1)

    def move(self, lo: int, hi: int) -> None:
        cfg = self.cluster.admin("GET", "/config")
        if cfg is None:
            self.log.note("move skipped: no meta node answers")
            self._stop.wait(1.0)
            return
        owner = _owner(cfg, lo)
        groups = sorted(int(g) for g in cfg["groups"])
        target = groups[(groups.index(owner) + 1) % len(groups)] if owner in groups else groups[0]
        answer = self.cluster.admin("POST", "/move", {"lo": lo, "hi": hi, "group": target})
        if answer is None:
            self.refused += 1
            self.log.note(f"move {lo}-{hi} to g{target}: refused or no answer")
            return
        num = int(answer.get("config", {}).get("num", 0))
        self.committed += 1
        self.last_num = max(self.last_num, num)
        self.log.note(f"move {lo}-{hi} to g{target}: config {num}, {answer.get('moved')} slots")
        deadline = time.monotonic() + self.wait
        while not self._stop.is_set() and time.monotonic() < deadline:
            if self._done(num):
                self.completed += 1
                self.log.note(f"config {num} settled")
                return
            self._stop.wait(0.5)

    def _done(self, num: int) -> bool:
        report = self.cluster.admin("GET", "/migrations", timeout=3.0)
        if report is None:
            return False
        return not report.get("in_flight") and all(
            "error" not in g and g.get("config", -1) >= num for g in report["groups"]
        )


def _owner(cfg: dict[str, Any], slot: int) -> int:
    for lo, hi, gid in cfg["ranges"]:
        if lo <= slot <= hi:
            return int(gid)
    return 0
