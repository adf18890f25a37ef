"""A Jepsen-style campaign against one Raft group of real processes.

:func:`run_campaign`: concurrent redis-py clients (:class:`~.workload.Workload`)
record every operation in a :class:`~.linearizability.History` while
:class:`~.nemesis.Nemesis` threads inject faults; then heal, final reads,
the linearizability check and a one-line summary.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .harness import EventLog, keep_artifacts, seeded
from .kvgroup import KVGroup
from .linearizability import History, Result, check
from .nemesis import NETWORK_FAULTS, Nemesis
from .workload import Workload

__all__ = ["CampaignResult", "run_campaign"]


@dataclass
class CampaignResult:
    """What one run did and what the checker said."""

    ok: bool
    seconds: float
    operations: int
    outcomes: dict[str, int]
    faults: dict[str, int]
    check: Result
    wall: float
    kept: str | None = None
    nemesis_log: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    problem: str = ""

    def summary(self) -> str:
        if self.check.ok and not self.problem:
            verdict = "linearizable"
        elif self.check.unknown:
            verdict = "UNKNOWN (checker budget exhausted)"
        elif self.problem:
            verdict = f"FAILED ({self.problem})"
        else:
            verdict = f"NOT LINEARIZABLE (key {self.check.key!r})"
        outcomes = ", ".join(f"{v} {k}" for k, v in sorted(self.outcomes.items()))
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        text = (
            f"jepsen: {self.operations} operations ({outcomes}) in {self.seconds:.0f}s; "
            f"{sum(self.faults.values())} faults ({faults}); result: {verdict}; "
            f"checked in {self.check.elapsed:.2f}s, wall {self.wall:.0f}s"
        )
        if self.kept:
            text += f"; kept in {self.kept}"
        return text


def run_campaign(
    seconds: float = 30.0,
    faults: Iterable[str] = ("partition", "kill", "pause"),
    seed: int | None = None,
    nodes: int = 3,
    clients: int = 8,
    keys: int = 4,
    ops_per_key: int = 200,
    client_timeout: float = 2.0,
    node_args: list[str] | None = None,
    keep_dir: str | None = None,
    interval: tuple[float, float] = (1.0, 3.0),
    duration: tuple[float, float] = (2.0, 6.0),
    check_budget: int | None = 20_000_000,
    overlap: bool = False,
    strict: bool = False,
    out: Callable[[str], object] = print,
) -> CampaignResult:
    """Start a group, run clients and the nemesis for ``seconds``, heal, read
    every key, check the history, print one summary line.

    With ``overlap`` network faults and the others come from two threads,
    so they overlap (a kill during a partition...). ``strict``: see
    :class:`Workload`.

    On a failure the history (JSON), the nemesis log and the node logs are
    copied to a new directory under ``keep_dir`` (default: the system temp
    directory), whose path is printed and returned in ``kept``.
    """
    t_start = time.monotonic()
    seed, rng = seeded(seed)
    fault_list = list(faults)
    extra = node_args or ["--tick-ms", "50", "--timeout", "1", "--snapshot-entries", "2000"]
    cluster = KVGroup(nodes, proxies=True, extra=extra)
    history = History()
    groups = [fault_list] if fault_list else []
    if overlap:
        # One thread for network faults, one for the rest: they overlap.
        network = [f for f in fault_list if f in NETWORK_FAULTS]
        other = [f for f in fault_list if f not in NETWORK_FAULTS]
        groups = [g for g in (network, other) if g]
    log = EventLog()
    nemeses = [
        Nemesis(cluster, g, random.Random(rng.random()), interval, duration, log=log)
        for g in groups
    ]
    workload = Workload(
        cluster,
        history,
        random.Random(rng.random()),
        clients=clients,
        keys=keys,
        ops_per_key=ops_per_key,
        timeout=client_timeout,
        strict=strict,
    )
    problem = ""
    try:
        cluster.start()
        cluster.leader()
        workload.start()
        for n in nemeses:
            n.start()
        time.sleep(seconds)
        for n in nemeses:
            n.stop()
        log.note("final heal")
        try:
            cluster.heal()
            if "member" in fault_list:
                cluster.repair_membership()
            cluster.wait_healthy()
        except RuntimeError as e:
            problem = f"no recovery after heal: {e}"
        # A little more traffic on the healed group, then stop.
        time.sleep(1.0)
        workload.stop()
        if not problem:
            reads = workload.final_reads()
            log.note(f"final reads: {reads}")
        for n in nemeses:
            if n.error is not None:
                problem = problem or f"nemesis error: {n.error}"
        dead = [n.node_id for n in cluster.nodes if not n.alive]
        if dead:
            problem = problem or f"nodes {dead} died"
        result = check(history, budget=check_budget)
    finally:
        workload.stop()
        for n in nemeses:
            n.stop()
        cluster.stop()
    campaign = CampaignResult(
        ok=result.ok and not problem,
        seconds=seconds,
        operations=len(history),
        outcomes=history.counts(),
        faults=dict(sum((n.counts for n in nemeses), Counter[str]())),
        check=result,
        wall=time.monotonic() - t_start,
        nemesis_log=log.lines,
        errors=dict(workload.errors),
        problem=problem,
    )
    if not campaign.ok:
        readme = (
            f"seed {seed}, faults {fault_list}, nodes {nodes}, seconds {seconds}\n"
            f"{campaign.summary()}\n\n{result.explanation}\n\n"
            "re-check: python -m eraft_twisted.testing.linearizability history.json\n"
        )
        campaign.kept = keep_artifacts(
            f"jepsen-failure-{seed}-", keep_dir, readme, cluster, history, log.lines
        )
    shutil.rmtree(cluster.dir, ignore_errors=True)
    out(campaign.summary() + f" [seed {seed}, faults {','.join(fault_list) or 'none'}]")
    if not campaign.ok and result.explanation:
        out(result.explanation)
    return campaign
