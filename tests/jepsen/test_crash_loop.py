"""The crash durability loop: kill -9 while clients write, then check.

A random node (sometimes the whole group) is killed while clients INCR
counters and SET fresh keys; after every restart each acknowledged SET must
be there, each counter must be at least its acknowledged INCRs and at most
those plus the ones of unknown outcome, and never lower than before. CI
runs a few iterations; ``bench/jepsen.py --crash-loop 50`` runs 50.
"""

from __future__ import annotations

import os
import random
import sys

from twisted.trial import unittest

from eraft_twisted.testing.crashloop import crash_loop

ITERATIONS = int(os.environ.get("JEPSEN_CI_CRASHES", "10"))


class CrashLoop(unittest.TestCase):
    def test_acknowledged_writes_survive_kill_9(self) -> None:
        result = crash_loop(
            iterations=ITERATIONS,
            seed=random.randrange(2**32),
            out=lambda line: sys.stderr.write("\n" + line + "\n"),
        )
        self.assertTrue(result.ok, result.summary() + "\n" + "\n".join(result.problems[:20]))
        self.assertEqual(result.iterations, ITERATIONS)
        self.assertGreater(result.acked_sets, 0)
        self.assertGreater(result.acked_incrs, 0)
