"""Sharding end to end: meta group, two kv groups, router, real clients."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import redis
from twisted.trial import unittest

from eraft_twisted.hashslot import key_hash_slot
from tests.kdb.sharded import Deployment

REDIS_CLI = shutil.which("redis-cli")


class Counter(threading.Thread):
    """INCRs a few counters through the router; remembers acknowledged values
    and checks that no read goes back in time."""

    def __init__(self, d: Deployment, keys: list[str]) -> None:
        super().__init__(daemon=True)
        self.d = d
        self.keys = keys
        self.stop = threading.Event()
        self.acked = {k: 0 for k in keys}
        self.unknown = {k: 0 for k in keys}
        self.went_back: list[str] = []
        self.ops = 0

    def run(self) -> None:
        c = self.d.client(timeout=10)
        seen = {k: 0 for k in self.keys}
        while not self.stop.is_set():
            for k in self.keys:
                try:
                    self.acked[k] = c.incr(k)
                    self.ops += 1
                    v = int(c.get(k) or 0)
                    if v < seen[k]:
                        self.went_back.append(f"{k}: {seen[k]} then {v}")
                    seen[k] = max(seen[k], v)
                except redis.RedisError:
                    self.unknown[k] += 1


class ShardingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.d = Deployment()
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.stop)
        self.d.start_meta()
        self.d.start_group(1)
        self.d.wait(lambda: self.d.settled(1), "group 1 registered")
        self.d.start_router()

    def add_group_and_rebalance(self) -> int:
        self.d.start_group(2)
        self.d.wait(lambda: "2" in self.d.admin("GET", "/config")["groups"], "group 2 joined")
        self.d.admin("POST", "/rebalance", {})
        num = self.d.admin("GET", "/config")["num"]
        self.d.wait(lambda: self.d.settled(num), f"config {num} settled")
        return num

    def test_scale_out_routing_and_cluster_clients(self) -> None:
        c = self.d.client()
        c.mset({f"key:{i}": i for i in range(300)})
        c.set("ttl-key", "x", ex=1000)
        self.add_group_and_rebalance()
        # Everything is still there, now spread over both groups.
        self.assertEqual(
            c.mget([f"key:{i}" for i in range(300)]), [str(i).encode() for i in range(300)]
        )
        self.assertEqual(c.dbsize(), 301)
        self.assertTrue(900 < c.ttl("ttl-key") <= 1000)
        g1, g2 = self.d.groups[1], self.d.groups[2]
        n1, n2 = g1.leader().client().dbsize(), g2.leader().client().dbsize()
        self.assertEqual(n1 + n2, 301)
        self.assertTrue(n1 > 50 and n2 > 50, (n1, n2))
        # SCAN through the router visits both groups.
        self.assertEqual(len(set(c.scan_iter(count=50))), 301)
        # A node of the wrong group redirects; a cross-slot MSET is refused.
        key = "key:7"
        owner = 1 if key_hash_slot(key.encode()) < 8192 else 2
        other = self.d.groups[3 - owner].nodes[0].client()
        with self.assertRaises(redis.exceptions.MovedError) as moved:
            other.get(key)
        self.assertEqual(moved.exception.slot_id, key_hash_slot(key.encode()))
        with self.assertRaises(redis.exceptions.ClusterCrossSlotError):
            other.mset({"a": 1, "b": 2})
        if REDIS_CLI is not None:
            out = (
                subprocess.run(
                    [
                        REDIS_CLI,
                        "-c",
                        "-p",
                        str(self.d.groups[3 - owner].nodes[0].resp_port),
                        "get",
                        key,
                    ],
                    capture_output=True,
                    timeout=20,
                )
                .stdout.decode()
                .strip()
            )
            self.assertEqual(out, "7")
            out = (
                subprocess.run(
                    [REDIS_CLI, "-p", str(self.d.router_port), "get", key],
                    capture_output=True,
                    timeout=20,
                )
                .stdout.decode()
                .strip()
            )
            self.assertEqual(out, "7")
        # eraftctl waits for the data to move, showing what was copied.
        ctl = [
            sys.executable,
            "-m",
            "eraft_twisted.cli",
            "--meta",
            ",".join(f"http://{a}" for a in self.d.admin_addrs()),
        ]
        owner_of_0 = self.d.admin("GET", "/config")["ranges"][0][2]
        out = subprocess.run(
            [*ctl, "move", "0", "99", str(3 - owner_of_0)], capture_output=True, timeout=60
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"moving data:", out.stdout)
        self.assertIn(f"slots 0-99 moved to group {3 - owner_of_0}".encode(), out.stdout)
        out = subprocess.run([*ctl, "migrations"], capture_output=True, timeout=60)
        self.assertIn(b"groups still moving data: 0", out.stdout)
        self.assertEqual(c.dbsize(), 301)

        from redis.cluster import ClusterNode, RedisCluster

        rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", g1.nodes[0].resp_port)])
        try:
            self.assertEqual(rc.get("key:42"), b"42")
            self.assertTrue(rc.set("rc-key", "v"))
            self.assertEqual(c.get("rc-key"), b"v")
        finally:
            rc.close()

    def test_moving_a_range_back_and_forth_under_writes(self) -> None:
        self.add_group_and_rebalance()
        keys = [f"{{k{i}}}" for i in range(8)]
        counter = Counter(self.d, keys)
        counter.start()
        try:
            for i in range(20):
                self.d.admin("POST", "/move", {"lo": 0, "hi": 4095, "group": 2 - i % 2})
                num = self.d.admin("GET", "/config")["num"]
                self.d.wait(lambda n=num: self.d.settled(n), f"config {num} settled")
        finally:
            counter.stop.set()
            counter.join(30)
        self.assertEqual(counter.went_back, [])
        self.assertGreater(counter.ops, 50)
        c = self.d.client()
        for k in keys:
            value = int(c.get(k) or 0)
            self.assertGreaterEqual(value, counter.acked[k], k)
            self.assertLessEqual(value, counter.acked[k] + counter.unknown[k], k)

    def test_migration_survives_killing_the_source_leader(self) -> None:
        c = self.d.client()
        c.mset({f"m:{i}": i for i in range(2000)})
        self.d.start_group(2)
        self.d.wait(lambda: "2" in self.d.admin("GET", "/config")["groups"], "group 2 joined")
        self.d.admin("POST", "/rebalance", {})
        self.d.groups[1].leader().kill()
        num = self.d.admin("GET", "/config")["num"]
        time.sleep(1)
        self.d.wait(lambda: self.d.settled(num), f"config {num} settled", timeout=180)
        self.assertEqual(
            c.mget([f"m:{i}" for i in range(2000)]), [str(i).encode() for i in range(2000)]
        )
