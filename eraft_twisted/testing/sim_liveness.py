"""What must happen once the simulated faults heal.

A stable leader within a bounded number of ticks; writes proposed then
commit on every member; reads on every member are answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..raft.types import NONE, EntryType
from .sim_types import TICK, SimNode

if TYPE_CHECKING:
    from .sim import Simulation


def stable_leader(sim: Simulation) -> SimNode | None:
    """The leader, if it has committed in its term and every member follows it."""
    lead = sim.leader()
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
        m = sim.nodes[nid].raw
        if m is None or m.term > raw.term:
            return None
    return lead


def _wait_for_stable_leader(sim: Simulation) -> SimNode:
    et = sim.setup.election_tick
    bound = 30 * et
    start = sim.now
    stable_for = 0
    last: tuple[int, int] | None = None
    while True:
        lead = stable_leader(sim)
        key = (lead.id, lead.raw.term) if lead is not None and lead.raw is not None else None
        stable_for = stable_for + 1 if key is not None and key == last else 0
        last = key
        if stable_for >= 2 * et:
            assert lead is not None
            return lead
        if sim.now - start > bound * TICK:
            raise sim.fail(f"liveness: no stable leader within {bound} ticks of healing")
        sim.run_ticks(1)
        sim.faults.shut_down_removed()


def check_liveness(sim: Simulation) -> None:
    """After healing: a stable leader soon, and healthy-period writes commit everywhere."""
    et = sim.setup.election_tick
    start = sim.now
    lead = _wait_for_stable_leader(sim)
    assert lead.raw is not None
    lead_term = lead.raw.term
    props: list[tuple[int, int, bytes]] = []
    for _ in range(5):
        p = sim.propose(lead)
        if p is None:
            raise sim.fail(f"liveness: stable leader {lead.id} refused a proposal")
        props.append(p)
        sim.run_ticks(1)
        if sim.leader() is not lead or lead.raw.term != lead_term:
            raise sim.fail("liveness: leadership changed during the healthy period")
    # a read on every member must also be answered
    members = lead.raw.conf.members()
    want_reads = []
    for nid in members:
        n = sim.nodes[nid]
        sim.issue_read(n)
        want_reads.append((n, b"r%d" % sim.read_seq))
    # A backlog left by the storm may replicate one entry per message and
    # one message in flight: allow a (generous) tick per entry on top.
    backlog = lead.raw.raft.log.last_index() - min(sim.nodes[nid].sm_index for nid in members)
    allowed = 10 * et + backlog
    deadline = sim.now + allowed * TICK
    reads = sim.checker.reads
    last_index = max(p[0] for p in props)
    while True:
        done = all(sim.nodes[nid].sm_index >= last_index for nid in members)
        reads_done = all(
            reads[ctx].answers > 0 or sim.nodes[n.id].raw is None for n, ctx in want_reads
        )
        if done and reads_done:
            break
        if sim.now > deadline:
            behind = {nid: sim.nodes[nid].sm_index for nid in members}
            raise sim.fail(
                f"liveness: writes up to {last_index} (or reads) not done on all of "
                f"{list(members)} within {allowed} ticks: applied {behind}, "
                f"reads answered {[reads[c].answers for _, c in want_reads]}"
            )
        sim.run_ticks(1)
    for index, term, data in props:
        if sim.checker.applied[index] != (term, int(EntryType.NORMAL), data):
            raise sim.fail(f"liveness: healthy write {data!r} at {index} was lost")
    sim.stats.liveness_ticks = (sim.now - start) // TICK
    sim.stats.election_ticks = et
