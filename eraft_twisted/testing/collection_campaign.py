"""Fault campaigns for collections and transactions (issue #12's proof).

:func:`run_collection_campaign` runs one workload of
:mod:`.collection_workload` (``set``, ``list``, ``transfer`` or ``queue``) against a
3-node :class:`~.kvgroup.KVGroup` with proxies under the same
:class:`~.nemesis.Nemesis` as :func:`~.campaign.run_campaign`; then heal,
final reads on every node, the workload's checker and one summary line.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .campaign_base import FaultRun, counts_text, outcomes_text
from .collection_workload import WORKLOADS, CollectionWorkload, TransferWorkload
from .harness import keep_artifacts, poll_until

__all__ = ["CollectionResult", "run_collection_campaign"]


@dataclass
class CollectionResult:
    """What one run did and what the checker said."""

    ok: bool
    workload: str
    seconds: float
    operations: int
    acknowledged: int
    outcomes: dict[str, int]
    faults: dict[str, int]
    problems: list[str]
    wall: float
    checked: float = 0.0
    kept: str | None = None
    nemesis_log: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    problem: str = ""

    def summary(self) -> str:
        if self.ok:
            verdict = "ok"
        elif self.problem:
            verdict = f"FAILED ({self.problem})"
        else:
            verdict = f"FAILED ({len(self.problems)} problems: {self.problems[0]})"
        text = (
            f"jepsen-{self.workload}: {self.operations} operations "
            f"({outcomes_text(self.outcomes)}), {self.acknowledged} acknowledged writes "
            f"in {self.seconds:.0f}s; {sum(self.faults.values())} faults "
            f"({counts_text(self.faults)}); result: {verdict}; "
            f"checked in {self.checked:.2f}s, wall {self.wall:.0f}s"
        )
        if self.kept:
            text += f"; kept in {self.kept}"
        return text


def run_collection_campaign(
    workload: str = "set",
    seconds: float = 30.0,
    faults: Iterable[str] = ("partition", "kill", "pause"),
    seed: int | None = None,
    nodes: int = 3,
    clients: int = 8,
    client_timeout: float = 2.0,
    node_args: list[str] | None = None,
    keep_dir: str | None = None,
    interval: tuple[float, float] = (1.0, 3.0),
    duration: tuple[float, float] = (2.0, 6.0),
    overlap: bool = False,
    out: Callable[[str], object] = print,
) -> CollectionResult:
    """Start a group, run ``workload``'s clients and the nemesis for
    ``seconds``, heal, read every key on every node, check, print one
    summary line (with the seed).

    On a failure the operations (JSON), the nemesis log and the node logs
    are copied to a new directory under ``keep_dir`` (default: the system
    temp directory), named in the summary and in ``kept``.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose from {sorted(WORKLOADS)}")
    run = FaultRun.build(faults, seed, nodes, node_args, interval, duration, overlap)
    seed, fault_list, cluster, log = run.seed, run.faults, run.cluster, run.log
    clients_rng = random.Random(run.rng.random())
    work = WORKLOADS[workload](cluster, clients_rng, clients=clients, timeout=client_timeout)
    problem = ""
    problems: list[str] = []
    checked = 0.0
    with run.stopping(work):
        try:
            cluster.start()
            leader = cluster.wait_healthy()
            if isinstance(work, TransferWorkload):
                poll_until(lambda: work.setup(cluster.leader().resp_port), "the accounts' MSET", 30)
                log.note(f"accounts set through node {leader.node_id}")
        except RuntimeError as e:
            problem = f"the group did not start: {e}"
        if not problem:
            problem, problems, checked = _run(run, work, seconds)
    result = CollectionResult(
        ok=not problem and not problems,
        workload=workload,
        seconds=seconds,
        operations=len(work.recorder.ops),
        acknowledged=work.acknowledged(),
        outcomes=work.recorder.counts(),
        faults=run.fault_counts(),
        problems=problems,
        wall=run.wall(),
        checked=checked,
        nemesis_log=log.lines,
        errors=dict(work.errors),
        problem=problem,
    )
    if not result.ok:
        readme = (
            f"workload {workload}, seed {seed}, faults {fault_list}, nodes {nodes}, "
            f"seconds {seconds}\n{result.summary()}\n\n" + "\n".join(problems) + "\n\n"
            "ops.json: every operation (invoke/complete are positions in one order)\n"
        )
        result.kept = keep_artifacts(
            f"jepsen-{workload}-failure-{seed}-", keep_dir, readme, cluster, None, log.lines
        )
        work.recorder.dump(os.path.join(result.kept, "ops.json"))
    run.finish(result.summary(), out)
    for p in problems:
        out("  " + p)
    return result


def _run(run: FaultRun, work: CollectionWorkload, seconds: float) -> tuple[str, list[str], float]:
    """Clients and faults for ``seconds``, heal, final reads, check: (what
    went wrong with the group, the checker's problems, checking time)."""
    problem = run.faults_then_heal(work, seconds)
    final = {} if problem else work.final_reads()
    run.log.note(f"final reads of {len(final)} keys")
    problem = run.group_problem(problem)
    if problem:
        return problem, [], 0.0
    t_check = time.monotonic()
    problems = work.check(final)
    return "", problems, time.monotonic() - t_check
