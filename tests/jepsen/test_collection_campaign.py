"""Fault campaigns for sets, lists, transactions and blocking pops (issue #12's proof).

One run per workload (``JEPSEN_CI_SECONDS``, default 18 s) under a mix of
network and process faults; each prints one summary line with its seed
and keeps its logs in a directory it names if it fails.
``bench/jepsen_collections.py`` runs the long campaign.
"""

from __future__ import annotations

import os
import random
import time
import types

from twisted.trial import unittest

from eraft_twisted.testing.collection_campaign import CollectionResult, run_collection_campaign
from eraft_twisted.testing.collection_workload import QueueWorkload, SetWorkload
from tests.jepsen.test_campaign import redis_with_replica, report

SECONDS = float(os.environ.get("JEPSEN_CI_SECONDS", "18"))


class CollectionCampaign(unittest.TestCase):
    """Each run must pass its checker, with the group healthy again."""

    def run_one(self, workload: str, faults: list[str], least: int) -> CollectionResult:
        result = run_collection_campaign(
            workload,
            seconds=SECONDS,
            faults=faults,
            seed=random.randrange(2**32),
            interval=(0.5, 2.0),
            duration=(1.5, 4.0),
            out=report,
        )
        self.assertTrue(result.ok, result.summary() + "\n" + "\n".join(result.problems))
        self.assertGreater(result.acknowledged, least)
        self.assertGreater(sum(result.faults.values()), 2)
        return result

    def test_sets(self) -> None:
        """SADD of unique values, SMEMBERS reads: nothing lost, nothing invented."""
        self.run_one("set", ["partition", "oneway", "kill", "pause"], 300)

    def test_lists(self) -> None:
        """RPUSH of unique values, LRANGE reads: one order, no duplicates, nothing lost."""
        self.run_one("list", ["partition", "bridge", "kill", "pause", "snapshot"], 300)

    def test_transfers(self) -> None:
        """WATCH/MULTI/EXEC transfers: every read's total stays the same."""
        self.run_one("transfer", ["partition", "oneway", "kill", "pause", "transfer"], 50)

    def test_queue(self) -> None:
        """RPUSH producers, BLPOP consumers: each element popped at most once,
        nothing invented, nothing lost beyond the pops of unknown outcome."""
        result = self.run_one("queue", ["partition", "bridge", "kill", "pause", "transfer"], 150)
        self.assertGreater(result.outcomes.get("pop ok", 0), 100)


class HarnessCatchesStaleSets(unittest.TestCase):
    """The set clients and checker against a system whose reads are not
    linearizable: Redis with an asynchronous replica serving reads."""

    def test_redis_replica_misses_acknowledged_members(self) -> None:
        nodes = redis_with_replica(self, "jepsen-redis-sets-")
        work = SetWorkload(types.SimpleNamespace(nodes=nodes), random.Random(7), read_share=0.4)
        work.start()
        stale: list[str] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not stale:
            time.sleep(1.0)
            # No final reads yet: look only at the reads' problems.
            stale = [p for p in work.check({}) if "misses" in p]
        work.stop()
        self.assertTrue(stale, f"{len(work.recorder.ops)} operations and no stale read found")
        report(f"redis with a replica: {stale[0]}")


class QueueHarnessOnRedis(unittest.TestCase):
    """The queue clients and checker against one redis-server, which keeps
    the queue's guarantees: the checker finds nothing (no false alarm)."""

    def test_redis_queue_passes(self) -> None:
        primary = redis_with_replica(self, "jepsen-redis-queue-")[:1]
        work = QueueWorkload(types.SimpleNamespace(nodes=primary), random.Random(7), block=0.3)
        work.start()
        time.sleep(3.0)
        work.stop()
        self.assertEqual(work.check(work.final_reads(timeout=10)), [])
        self.assertGreater(work.popped(), 50)
        report(f"redis queue: {work.recorder.counts()}")
