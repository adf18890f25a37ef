"""A Jepsen-style campaign against one Raft group of real processes.

:func:`run_campaign`: concurrent redis-py clients (:class:`~.workload.Workload`)
record every operation in a :class:`~.linearizability.History` while
:class:`~.nemesis.Nemesis` threads inject faults; then heal, final reads,
the linearizability check and a one-line summary.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .campaign_base import FaultRun, counts_text, outcomes_text
from .harness import keep_artifacts
from .linearizability import History, Result, check
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
        text = (
            f"jepsen: {self.operations} operations ({outcomes_text(self.outcomes)}) "
            f"in {self.seconds:.0f}s; {sum(self.faults.values())} faults "
            f"({counts_text(self.faults)}); result: {verdict}; "
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
    run = FaultRun.build(faults, seed, nodes, node_args, interval, duration, overlap)
    seed, fault_list, cluster, log = run.seed, run.faults, run.cluster, run.log
    history = History()
    workload = Workload(
        cluster,
        history,
        random.Random(run.rng.random()),
        clients=clients,
        keys=keys,
        ops_per_key=ops_per_key,
        timeout=client_timeout,
        strict=strict,
    )
    with run.stopping(workload):
        cluster.start()
        cluster.leader()
        problem = run.faults_then_heal(workload, seconds)
        if not problem:
            reads = workload.final_reads()
            log.note(f"final reads: {reads}")
        problem = run.group_problem(problem)
        result = check(history, budget=check_budget)
    campaign = CampaignResult(
        ok=result.ok and not problem,
        seconds=seconds,
        operations=len(history),
        outcomes=history.counts(),
        faults=run.fault_counts(),
        check=result,
        wall=run.wall(),
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
    run.finish(campaign.summary(), out)
    if not campaign.ok and result.explanation:
        out(result.explanation)
    return campaign
