"""The randomized simulation: many seeded fault schedules, safety after every step.

``ERAFT_SIM_SEEDS`` sets how many seeds run in total (default 500, split
over 3/5 nodes with and without membership changes); ``ERAFT_SIM_START``
shifts the first seed. A failure prints a one-line replay command; the
``Replay`` test below runs the seed named by ``ERAFT_SIM_SEED`` (by default
seed 1234 of 5 nodes with membership changes, the documented example).
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial import unittest

from eraft_twisted.raft.core import Raft
from eraft_twisted.raft.types import NONE, Message, MessageType, Role
from eraft_twisted.testing.sim import SimParams, Simulation, Violation, run_seed, seed_params

MT = MessageType
SEEDS = int(os.environ.get("ERAFT_SIM_SEEDS", "500"))
START = int(os.environ.get("ERAFT_SIM_START", "0"))


def run_range(case: unittest.TestCase, nodes: int, membership: bool) -> None:
    per_mix = max(1, SEEDS // 4)
    failures = []
    for seed in range(START, START + per_mix):
        try:
            run_seed(SimParams(seed, nodes, membership))
        except Violation as v:
            failures.append(str(v))
            if len(failures) >= 3:
                break
    if failures:
        case.fail(f"{len(failures)} failing seed(s):\n" + "\n".join(failures))


class RandomizedSimulation(unittest.TestCase):
    def test_3_nodes(self) -> None:
        run_range(self, 3, False)

    def test_5_nodes(self) -> None:
        run_range(self, 5, False)

    def test_3_nodes_with_membership_changes(self) -> None:
        run_range(self, 3, True)

    def test_5_nodes_with_membership_changes(self) -> None:
        run_range(self, 5, True)


def replay_params() -> SimParams:
    """ERAFT_SIM_SEED (with ERAFT_SIM_NODES/_MEMBERSHIP/_TICKS), or the default scenario."""
    seed = os.environ.get("ERAFT_SIM_SEED")
    if seed is None:
        return SimParams(1234, 5, True)
    return SimParams(
        int(seed),
        int(os.environ.get("ERAFT_SIM_NODES", "3")),
        os.environ.get("ERAFT_SIM_MEMBERSHIP", "") not in ("", "0"),
        int(os.environ.get("ERAFT_SIM_TICKS", str(SimParams.ticks))),
    )


class Replay(unittest.TestCase):
    def test_replay(self) -> None:
        """Replay one scenario; on a violation, report every node's state."""
        params = replay_params()
        sim = Simulation(params)
        try:
            stats = sim.run()
        except Violation as v:
            self.fail(f"{v}\n{sim.describe()}")
        # The scenario ran through faults, healing and the liveness check.
        self.assertGreater(stats.leaders, 0)
        self.assertGreater(stats.committed, 0)
        self.assertEqual(stats.election_ticks, sim.setup.election_tick)
        self.assertTrue(stats.digest)


class Determinism(unittest.TestCase):
    def test_same_seed_same_run(self) -> None:
        for params in (SimParams(11, 3, False), SimParams(12, 5, True)):
            a, b = run_seed(params), run_seed(params)
            self.assertEqual(a, b)
            self.assertGreater(a.messages, 100)

    def test_independent_of_hash_randomization(self) -> None:
        digests = set()
        for hashseed in ("1", "2"):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "eraft_twisted.testing.sim",
                    "--seed",
                    "5",
                    "--nodes",
                    "5",
                    "--membership",
                ],
                env={**os.environ, "PYTHONHASHSEED": hashseed},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            digests.add(out.split("digest=")[1].split()[0])
        self.assertEqual(len(digests), 1)

    def test_failure_names_the_replay_command(self) -> None:
        v = Violation(SimParams(1234, 5, True), 42, "something broke")
        self.assertIn(
            ".venv/bin/python -m eraft_twisted.testing.sim --seed 1234 --nodes 5 --membership",
            str(v),
        )
        self.assertIn("ERAFT_SIM_SEED=1234 ERAFT_SIM_NODES=5 ERAFT_SIM_MEMBERSHIP=1", str(v))

    def test_cli_runs_many_seeds(self) -> None:
        from eraft_twisted.testing.sim import main

        self.assertEqual(main(["--seeds", "4", "--jobs", "1", "--ticks", "50"]), 0)


def first_violation(seeds: range) -> Violation:
    for seed in seeds:
        try:
            run_seed(seed_params(seed))
        except Violation as v:
            return v
    raise AssertionError(f"no violation found in seeds {seeds}")


class CheckerCatchesBrokenRules(unittest.TestCase):
    """Break a rule of Raft on purpose: the simulation must notice."""

    def test_granting_two_votes_in_one_term(self) -> None:
        step = Raft.step

        def forgetful(self: Raft, m: Message) -> None:
            if m.type == MT.VOTE and m.term == self.term and self.role != Role.LEADER:
                self.vote = NONE  # forget the vote already cast in this term
                self.leader = NONE
            step(self, m)

        self.patch(Raft, "step", forgetful)
        v = first_violation(range(40))
        self.assertIn("Election Safety", v.what)
        # ...and the failure replays exactly.
        with self.assertRaises(Violation) as again:
            run_seed(v.params)
        self.assertEqual(str(again.exception), str(v))

    def test_reads_without_a_quorum_round(self) -> None:
        def lease_read(self: Raft, m: Message) -> None:
            self._answer_read(m.frm, self.log.committed, m.context)

        self.patch(Raft, "_leader_read_index", lease_read)
        v = first_violation(range(200))
        self.assertTrue("stale read" in v.what or "answered by a leader of term" in v.what, v.what)

    def test_committing_an_old_term_entry_by_counting(self) -> None:
        from eraft_twisted.raft.log import RaftLog

        def counting(self: RaftLog, max_index: int, term: int) -> bool:
            if max_index > self.committed:
                self.commit_to(max_index)
                return True
            return False

        self.patch(RaftLog, "maybe_commit", counting)
        v = first_violation(range(40))
        self.assertIn("§5.4.2", v.what)
