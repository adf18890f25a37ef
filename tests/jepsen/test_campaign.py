"""A short Jepsen-style campaign: real processes, faults, a checked history.

Three runs with different nemeses (about 25 s each). Every run prints one
summary line with its seed; a failing run keeps the history and the node
logs in a directory named in the failure. ``bench/jepsen.py`` runs the long
campaign.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import types

from twisted.trial import unittest

from eraft_twisted.testing.campaign import CampaignResult, run_campaign
from eraft_twisted.testing.linearizability import History, check
from eraft_twisted.testing.procs import free_ports, raw_command
from eraft_twisted.testing.workload import Workload
from tests.waiting import wait_until

SECONDS = float(os.environ.get("JEPSEN_CI_SECONDS", "20"))


def report(text: str) -> None:
    """Print ``text`` on its own lines of the test's stderr."""
    sys.stderr.write("\n" + text + "\n")


def redis_with_replica(case: unittest.TestCase, prefix: str) -> list[types.SimpleNamespace]:
    """A redis-server and an asynchronous replica of it (skips ``case``
    without redis-server), stopped at ``case``'s cleanup: the two as
    nodes (``node_id``, ``resp_port``) for a workload."""
    server = shutil.which("redis-server")
    if server is None:
        raise unittest.SkipTest("redis-server is not installed")
    workdir = tempfile.mkdtemp(prefix=prefix)
    case.addCleanup(shutil.rmtree, workdir, True)
    primary, replica = free_ports(2)
    common = ["--save", "", "--appendonly", "no", "--dir", workdir]
    procs = [
        subprocess.Popen([server, "--port", str(primary), *common], stdout=subprocess.DEVNULL),
        subprocess.Popen(
            [server, "--port", str(replica), *common, "--replicaof", "127.0.0.1", str(primary)],
            stdout=subprocess.DEVNULL,
        ),
    ]
    for p in procs:
        case.addCleanup(p.wait)
        case.addCleanup(p.kill)
    wait_until(
        lambda: all(raw_command(p, "PING") == b"+PONG\r\n" for p in (primary, replica)),
        timeout=10,
        interval=0.05,
        message="both redis-servers answering PING",
    )
    return [
        types.SimpleNamespace(node_id=0, resp_port=primary),
        types.SimpleNamespace(node_id=1, resp_port=replica),
    ]


class Campaign(unittest.TestCase):
    """Each run must end linearizable, with the group healthy again."""

    def run_one(self, faults: list[str], **kw: object) -> CampaignResult:
        seed = random.randrange(2**32)
        result = run_campaign(
            seconds=SECONDS,
            faults=faults,
            seed=seed,
            interval=(0.5, 2.0),
            duration=(1.5, 4.0),
            out=report,
            **kw,  # type: ignore[arg-type]
        )
        self.assertTrue(result.ok, result.summary() + "\n" + result.check.explanation)
        self.assertGreater(result.operations, 500)
        self.assertGreater(sum(result.faults.values()), 2)
        return result

    def test_network_faults(self) -> None:
        """Partitions (dropping and resetting), one-way cuts, bridges, slow links."""
        self.run_one(["partition", "oneway", "bridge", "slow"])

    def test_process_faults(self) -> None:
        """kill -9 of the leader or a random node (sometimes all), SIGSTOP/SIGCONT."""
        self.run_one(["kill", "pause"])

    def test_mixed_faults(self) -> None:
        """Everything, plus leader transfers and snapshots."""
        self.run_one(
            ["partition", "oneway", "kill", "pause", "transfer", "snapshot"],
            node_args=["--tick-ms", "50", "--timeout", "1", "--snapshot-entries", "500"],
        )


class HarnessCatchesStaleReads(unittest.TestCase):
    """The same clients and checker against a system that is not
    linearizable: Redis with an asynchronous replica serving reads."""

    def test_redis_replica_is_not_linearizable(self) -> None:
        nodes = redis_with_replica(self, "jepsen-redis-")
        history = History()
        workload = Workload(
            types.SimpleNamespace(nodes=nodes),  # type: ignore[arg-type]
            history,
            random.Random(7),
            clients=8,
            keys=2,
            ops_per_key=200,
        )
        workload.start()
        deadline = time.monotonic() + 15
        result = None
        while time.monotonic() < deadline:
            time.sleep(1.0)
            result = check(history)
            if not result.ok:
                break
        workload.stop()
        assert result is not None
        self.assertFalse(result.ok, f"{len(history)} operations and no stale read found")
        self.assertFalse(result.unknown)
        report(f"redis with a replica: {result.summary()}")
