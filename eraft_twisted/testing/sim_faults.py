"""Crashes, power cuts and restarts in the simulation, and when they strike.

Every crash is a power cut (:mod:`.powercut`): a node comes back with only
what it had synced -- a Ready's writes are synced when ``must_sync`` says
so; the commit index, snapshots, compactions and a kept state machine are
written unsynced -- and, sometimes, a prefix of what it wrote after that.
Now and then the whole cluster loses power at once, and some seeds model
the OS writing its cache back every few ticks.

Storms (partitions, crashes, blackouts, leader transfers, membership
changes) alternate with calm spells in which the group can make progress
and lagging nodes need snapshots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..raft.types import ConfChange, ConfChangeType, ConfState, RaftError
from .powercut import ZERO, cut_power
from .sim_types import TICK, SimNode

if TYPE_CHECKING:
    from .sim import Simulation


class FaultSchedule:
    """Decides, tick by tick, which node loses power, restarts, or is cut off."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.storm = False
        self.epoch_end = 0
        self.over = False
        """Set by :meth:`heal`: no fault strikes any more."""

    # -- one node ------------------------------------------------------------
    def crash(self, n: SimNode, power_cut: bool = True) -> None:
        """Stop ``n``: a power cut loses its unsynced writes; a clean stop syncs first."""
        sim = self.sim
        n.raw = None
        n.reads = []
        st = n.storage
        if not power_cut:
            st.sync()
        lost = cut_power(st, sim.rng)
        sim.stats.lost_writes += lost
        if n.persistent_sm:
            n.sm_index, n.sm_hash = st.state_machine
        else:
            n.sm_index, n.sm_hash = 0, ZERO
        sim.stats.crashes += 1
        sim.note(f"node {n.id} crashes, losing {lost} unsynced writes")
        sim.mix(9, n.id, lost)

    def _down(self) -> list[SimNode]:
        return [n for n in self.sim.nodes.values() if n.raw is None]

    # -- the schedule -----------------------------------------------------------
    def tick(self) -> None:
        """The faults of one tick: a storm's, or a calm spell's restarts."""
        sim = self.sim
        if sim.now >= self.epoch_end:
            self.storm = not self.storm or sim.rng.random() < 0.3
            self.epoch_end = sim.now + sim.rng.randint(10, 80) * TICK
            if not self.storm:
                sim.network.blocked.clear()
        if self.storm:
            self._storm()
        else:
            self._calm()

    def _storm(self) -> None:
        sim = self.sim
        rng = sim.rng
        k = sim.knobs
        lead = sim.leader()
        sim.network.storm(list(sim.nodes), lead.id if lead is not None else None)
        if k.crash and rng.random() < k.crash:
            live = sim.live()
            if live:
                self.crash(rng.choice(live))
        if k.blackout and rng.random() < k.blackout:
            sim.note("the whole cluster loses power")
            sim.stats.blackouts += 1
            for n in sim.live():
                self.crash(n)
        down = self._down()
        if down and rng.random() < k.restart:
            sim.start(rng.choice(down))
        if k.transfer and rng.random() < k.transfer:
            self._transfer_leadership()
        if k.member and rng.random() < k.member:
            self._change_membership()

    def _calm(self) -> None:
        """Calm spell: restart crashed nodes now and then; no new faults."""
        down = self._down()
        if down and self.sim.rng.random() < 0.2:
            self.sim.start(self.sim.rng.choice(down))

    def after_clients(self) -> None:
        """Figure 8 of the Raft paper needs leaders that die after sending
        old entries but before an entry of their own term is committed."""
        sim = self.sim
        if not (self.storm and sim.knobs.kill_fresh_leader):
            return
        if sim.rng.random() >= sim.knobs.kill_fresh_leader:
            return
        lead = sim.leader()
        if lead is not None and lead.raw is not None:
            log = lead.raw.raft.log
            if log.term(log.committed) != lead.raw.term:
                sim.note(f"fresh leader {lead.id} killed")
                self.crash(lead)

    # -- operator actions during a storm ---------------------------------------
    def _transfer_leadership(self) -> None:
        sim = self.sim
        lead = sim.leader()
        if lead is None or lead.raw is None:
            return
        others = [v for v in lead.raw.conf.voters if v != lead.id]
        if not others:
            return
        try:
            lead.raw.transfer_leader(sim.rng.choice(others))
            sim.stats.transfers += 1
        except RaftError:
            pass
        sim.after_input(lead, None)

    def _change_membership(self) -> None:
        """Add a learner, remove a member, or promote a learner."""
        sim = self.sim
        lead = sim.leader()
        if lead is None or lead.raw is None:
            return
        raw = lead.raw
        conf = raw.conf
        rng = sim.rng
        members = conf.members()
        r = rng.random()
        if r < 0.45:
            outside = [nid for nid in sim.nodes if nid not in members]
            if len(sim.nodes) < sim.max_ids:
                outside.append(max(sim.nodes) + 1)
            if not outside:
                return
            cc = ConfChange(ConfChangeType.ADD_LEARNER, rng.choice(outside))
            if cc.node_id not in sim.nodes:
                sim.add_node(cc.node_id, ConfState())
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
            sim.note(f"leader {lead.id} proposes {cc.type.name} {cc.node_id} at {idx}")
        except RaftError:
            pass
        sim.after_input(lead, None)

    # -- the end of faults -------------------------------------------------------
    def heal(self) -> None:
        """End every fault: reconnect, restart, and stop losing or delaying messages."""
        sim = self.sim
        sim.note("heal")
        sim.network.heal()
        self.over = True
        for n in sim.nodes.values():
            if n.raw is None:
                sim.start(n)
        self.shut_down_removed()

    def shut_down_removed(self) -> None:
        """Stop servers that are no longer members, as an operator would."""
        # Without PreVote or CheckQuorum nothing stops a removed server that
        # missed its removal from disrupting the group (dissertation §4.2.3),
        # so it is shut down as an operator would (and started if re-added).
        sim = self.sim
        if sim.setup.pre_vote or sim.setup.check_quorum:
            return
        members = sim.checker.committed_conf.members()
        for n in sim.nodes.values():
            if n.raw is not None and n.id not in members:
                self.crash(n, power_cut=False)
                sim.note(f"node {n.id} shut down: not in {sim.checker.committed_conf}")
            elif n.raw is None and n.id in members:
                sim.start(n)
