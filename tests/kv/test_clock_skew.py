"""Expiry under real clock skew: three eraftkv processes under libfaketime.

Every node's clock is off by several seconds (ahead and behind) and moved
while the group runs; expiry must still be one decision for the whole
group: a TTL counts from the leader's time when the write is appended, and
once any read has seen a key expired, no later read on any node returns it.
"""

from __future__ import annotations

import os
import time

import redis
from twisted.trial import unittest

from eraft_twisted.testing.clockskew import SkewedClock, libfaketime

from ..procs import Cluster, twistd_env

BEHIND = -20.0
AHEAD = 6.0
LOG_TIME_LAG_MS = 600
"""How far the log's time may lag the leader's clock on a loaded machine."""


class ClockSkewTests(unittest.TestCase):
    timeout = 180

    def setUp(self) -> None:
        if libfaketime() is None:
            raise unittest.SkipTest("libfaketime is not installed (Debian package: faketime)")
        self.cluster = Cluster(3, ["--tick-ms", "50", "--timeout", "3"])
        self.addCleanup(self.cluster.stop)
        self.clocks = []
        # Skewed from the start, as a badly synchronised machine is: a step
        # back after the start would freeze that node's Twisted timers for
        # the step (the reactor schedules by the wall clock), 20 s here.
        offsets = {1: BEHIND, 2: AHEAD}
        for node in self.cluster.nodes:
            path = os.path.join(self.cluster.dir, f"clock{node.node_id}")
            clock = SkewedClock(path, offsets.get(node.node_id, 0.0))
            node.env = clock.env(twistd_env())
            self.clocks.append(clock)
        self.cluster.start()
        self.lead(0)
        self.nodes = self.cluster.nodes

    def lead(self, nid: int) -> None:
        """Make node ``nid`` the leader (a transfer, retried while elections run)."""
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.cluster.leader().node_id == nid:
                    return
                self.cluster.nodes[nid].client(timeout=5).execute_command(
                    "RAFT.TRANSFER_LEADER", nid
                )
            except (redis.RedisError, RuntimeError):
                time.sleep(0.2)
        self.fail(f"node {nid} did not become leader")

    def read(self, nid: int, *command: object) -> object:
        """``command`` on node ``nid``, retried through elections."""
        deadline = time.time() + 15
        while True:
            try:
                return self.nodes[nid].client(timeout=5).execute_command(*command)
            except redis.RedisError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    def watch_expiry(self, key: bytes, seconds: float, during: object = None) -> list[object]:
        """Read ``key`` on each node in turn until every node has answered nil
        a few times; check that once one did, none returns it again."""
        seen_expired_at = None
        history: list[object] = []
        deadline = time.time() + seconds
        i = 0
        nils = 0
        while time.time() < deadline and nils < 9:
            nid = i % 3
            i += 1
            if during is not None and i == 15:
                during()  # type: ignore[operator]
                during = None
            try:
                value = self.nodes[nid].client(timeout=3).get(key)
            except redis.RedisError:
                continue  # an election after a clock step: no answer is no read
            history.append((nid, value))
            if value is None:
                nils += 1
                if seen_expired_at is None:
                    seen_expired_at = len(history) - 1
                if during is not None:
                    # Expired before the 15th read (a slow machine): step now,
                    # so the reads after it still see the clock move.
                    during()  # type: ignore[operator]
                    during = None
            elif seen_expired_at is not None:
                self.fail(
                    f"{key!r} came back on node {nid} after node "
                    f"{history[seen_expired_at][0]} had seen it expired: {history}"
                )
        self.assertEqual(nils, 9, f"{key!r} never expired everywhere: {history[-10:]}")
        return history

    def test_ttl_counts_from_the_leaders_time_not_the_receiving_node(self) -> None:
        """``SET k v EX 10`` through a node 20 s behind lives 10 s everywhere
        (deciding the deadline by that node's clock expired it at once)."""
        self.assertTrue(self.read(1, "SET", "a", "v", "EX", "10"))
        sent = time.time()
        self.assertTrue(self.read(2, "PEXPIRE", "a", "10000"))
        for nid in range(3):
            self.assertEqual(self.read(nid, "GET", "a"), b"v")
            ttl = self.read(nid, "PTTL", "a")
            # Less what has gone by since (the log's time may lag a little);
            # by a skewed clock it would be off by 6 or 20 s.
            low = 10_000 - (time.time() - sent) * 1000 - LOG_TIME_LAG_MS
            self.assertTrue(low < ttl <= 10000, f"PTTL on node {nid}: {ttl}, low {low}")  # type: ignore

    def test_once_expired_expired_on_every_node(self) -> None:
        """Nodes ahead and behind, and a leader whose clock steps back while
        the key expires: no read returns a key another read saw expired."""
        self.assertTrue(self.read(0, "SET", "b", "v", "PX", "1500"))
        self.watch_expiry(b"b", 20, during=lambda: self.clocks[0].set(-3.0))
        for nid in range(3):
            self.assertEqual(self.read(nid, "EXISTS", "b"), 0)

    def test_leader_changes_never_move_time_back(self) -> None:
        """Leadership to the node ahead, then to the node 20 s behind: the
        log's time stays where the ahead leader took it, so what expired
        stays expired, and new TTLs still start from the log's time."""
        self.assertTrue(self.read(0, "SET", "long", "v", "EX", "60"))
        self.lead(2)
        self.assertTrue(self.read(2, "SET", "short", "v", "PX", "1000"))
        self.watch_expiry(b"short", 20)
        self.lead(1)
        # Written through the node behind, while it leads: its clock is 26 s
        # behind the log's time, which does not move back.
        sent = time.time()
        self.assertTrue(self.read(1, "SET", "c", "v", "EX", "30"))
        for nid in range(3):
            self.assertIsNone(self.read(nid, "GET", "short"))
            self.assertEqual(self.read(nid, "GET", "long"), b"v")
            self.assertEqual(self.read(nid, "GET", "c"), b"v")
            ttl = self.read(nid, "TTL", "c")
            # By the node's clock, 26 s behind the log's, c would have ~4 s.
            low = 30 - (time.time() - sent) - LOG_TIME_LAG_MS / 1000 - 1  # TTL rounds down
            self.assertTrue(low <= ttl <= 30, f"TTL of c on node {nid}: {ttl}, low {low}")  # type: ignore
