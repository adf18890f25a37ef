"""A short fault campaign over a whole sharded cluster of real processes.

The meta group, two kv groups behind fault-injecting proxies and the router;
clients through the router and straight to the kv nodes; kill -9, SIGTERM
and pauses of every kind of process, partitions inside kv groups, leader
transfers, snapshots, and slot ranges moving between the groups all along.
The history must be linearizable (strict: a write answered "not applied"
never shows up), every counter within its bounds, every key there.
``JEPSEN_CLUSTER_CI_SECONDS`` changes the length (default 25 s of faults);
``bench/jepsen_cluster.py`` (``make jepsen-cluster``) runs long campaigns.
"""

from __future__ import annotations

import os
import random
import shutil
import sys

from twisted.internet import defer, threads
from twisted.trial import unittest

from eraft_twisted.testing.cluster_campaign import ClusterCampaignResult, run_cluster_campaign
from eraft_twisted.testing.cluster_procs import ShardedCluster

SECONDS = float(os.environ.get("JEPSEN_CLUSTER_CI_SECONDS", "25"))


def _report(text: str) -> None:
    sys.stderr.write("\n" + text + "\n")


class ClusterCampaign(unittest.TestCase):
    # Startup, heal and checks take about 30 s on a loaded 2-core machine.
    timeout = SECONDS + 150

    def test_sharded_cluster_under_faults(self) -> defer.Deferred[None]:
        clusters: list[ShardedCluster] = []

        def cleanup() -> None:
            # Only matters if the campaign thread did not finish (a timeout):
            # kill everything for good, so no restart can follow.
            for c in clusters:
                c.kill_all()
                c.stop()
                shutil.rmtree(c.dir, ignore_errors=True)

        self.addCleanup(cleanup)
        seed = random.randrange(2**32)
        d = threads.deferToThread(
            run_cluster_campaign,
            seconds=SECONDS,
            seed=seed,
            filler=1000,
            on_cluster=clusters.append,
            out=_report,
        )

        def checked(result: ClusterCampaignResult) -> None:
            detail = "\n".join([result.summary(), *result.problems, result.check.explanation])
            self.assertTrue(result.ok, detail)
            self.assertGreater(result.operations, 500, detail)
            self.assertGreater(sum(result.faults.values()), 3, detail)
            self.assertGreater(result.moves, 2, detail)

        return d.addCallback(checked)
