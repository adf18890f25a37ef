"""The skeleton shared by the fault campaigns of one Raft group.

:class:`FaultRun` holds what :func:`~.campaign.run_campaign` and
:func:`~.collection_campaign.run_collection_campaign` both set up (the
seed, a :class:`~.kvgroup.KVGroup` with proxies, the nemeses and their
log) and does the steps they share: clients and faults for a while, the
final heal, the group's health afterwards, the stop and the summary line.
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from .harness import EventLog, seeded
from .kvgroup import KVGroup
from .nemesis import NETWORK_FAULTS, Nemesis

__all__ = ["Clients", "FaultRun", "counts_text", "outcomes_text"]

DEFAULT_NODE_ARGS = ["--tick-ms", "50", "--timeout", "1", "--snapshot-entries", "2000"]


class Clients(Protocol):
    """A workload's client threads."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def outcomes_text(outcomes: Mapping[str, int]) -> str:
    """``"12 fail, 340 ok"``: each count before its name."""
    return ", ".join(f"{v} {k}" for k, v in sorted(outcomes.items()))


def counts_text(counts: Mapping[str, int]) -> str:
    """``"kill 3, pause 2"`` (``"none"`` when empty)."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


@dataclass
class FaultRun:
    """One campaign run's group, nemeses and log (see :meth:`build`)."""

    seed: int
    rng: random.Random
    faults: list[str]
    cluster: KVGroup
    log: EventLog
    nemeses: list[Nemesis]
    t_start: float

    @classmethod
    def build(
        cls,
        faults: Iterable[str],
        seed: int | None,
        nodes: int,
        node_args: list[str] | None,
        interval: tuple[float, float],
        duration: tuple[float, float],
        overlap: bool,
    ) -> FaultRun:
        """A group (not started) and its nemeses: one over every fault, or
        with ``overlap`` one for network faults and one for the others, so
        they overlap (a kill during a partition...). Each nemesis draws
        its seed from ``rng`` in turn; the clients draw theirs after."""
        t_start = time.monotonic()
        seed, rng = seeded(seed)
        fault_list = list(faults)
        cluster = KVGroup(nodes, proxies=True, extra=node_args or DEFAULT_NODE_ARGS)
        groups = [fault_list] if fault_list else []
        if overlap:
            network = [f for f in fault_list if f in NETWORK_FAULTS]
            other = [f for f in fault_list if f not in NETWORK_FAULTS]
            groups = [g for g in (network, other) if g]
        log = EventLog()
        nemeses = [
            Nemesis(cluster, g, random.Random(rng.random()), interval, duration, log=log)
            for g in groups
        ]
        return cls(seed, rng, fault_list, cluster, log, nemeses, t_start)

    @contextmanager
    def stopping(self, work: Clients) -> Iterator[None]:
        """Stop the clients, the nemeses and the group however the block ends."""
        try:
            yield
        finally:
            work.stop()
            for n in self.nemeses:
                n.stop()
            self.cluster.stop()

    def faults_then_heal(self, work: Clients, seconds: float) -> str:
        """Clients and nemeses for ``seconds``, the final heal, a little
        more traffic on the healed group, then stop the clients: what went
        wrong with the heal ("" if nothing)."""
        problem = ""
        work.start()
        for n in self.nemeses:
            n.start()
        time.sleep(seconds)
        for n in self.nemeses:
            n.stop()
        self.log.note("final heal")
        try:
            self.cluster.heal()
            if "member" in self.faults:
                self.cluster.repair_membership()
            self.cluster.wait_healthy()
        except RuntimeError as e:
            problem = f"no recovery after heal: {e}"
        time.sleep(1.0)
        work.stop()
        return problem

    def group_problem(self, problem: str) -> str:
        """``problem``, else a nemesis's error, else nodes that died."""
        for n in self.nemeses:
            if n.error is not None:
                problem = problem or f"nemesis error: {n.error}"
        dead = [n.node_id for n in self.cluster.nodes if not n.alive]
        if dead:
            problem = problem or f"nodes {dead} died"
        return problem

    def fault_counts(self) -> dict[str, int]:
        """How many faults of each kind the nemeses injected."""
        return dict(sum((n.counts for n in self.nemeses), Counter[str]()))

    def wall(self) -> float:
        """Seconds since :meth:`build`."""
        return time.monotonic() - self.t_start

    def finish(self, summary: str, out: Callable[[str], object]) -> None:
        """Remove the group's directory and print ``summary`` with the seed
        and the faults."""
        shutil.rmtree(self.cluster.dir, ignore_errors=True)
        out(summary + f" [seed {self.seed}, faults {','.join(self.faults) or 'none'}]")
