"""Sharding end to end: meta group, two kv groups, router, real clients."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from types import SimpleNamespace
from typing import Any

import redis
from redis.exceptions import ClusterDownError, TryAgainError
from twisted.trial import unittest

from eraft_twisted.hashslot import key_hash_slot
from eraft_twisted.testing.linearizability import History, check
from eraft_twisted.testing.workload import KeySpace, Workload
from tests.kdb.sharded import Deployment

REDIS_CLI = shutil.which("redis-cli")


MOVING = (0, 4095)  # the slot range the tests move around


class MovingKeys(KeySpace):
    """The workload's keys, all in the slots that move."""

    def _new(self) -> str:
        while True:
            key = f"{self.prefix}{self.next}"
            self.next += 1
            if MOVING[0] <= key_hash_slot(key.encode()) <= MOVING[1]:
                self.used[key] = 0
                return key


class CheckedWorkload:
    """Concurrent redis-py clients on the router recording a history that
    the linearizability checker judges at the end."""

    def __init__(self, d: Deployment, seed: int) -> None:
        self.history = History()
        router = SimpleNamespace(node_id=0, resp_port=d.router_port)
        rng = random.Random(seed)
        self.workload = Workload(
            SimpleNamespace(nodes=[router]),  # type: ignore[arg-type]
            self.history,
            rng,
            clients=4,
            keys=4,
            ops_per_key=150,
            timeout=8.0,
            prefix="mv",
        )
        self.workload.keys = MovingKeys(4, 150, random.Random(rng.random()), "mv")

    def __enter__(self) -> CheckedWorkload:
        self.workload.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.workload.stop()

    def check(self, test: unittest.TestCase, min_ok: int) -> None:
        """Read every key once more, then check the whole history."""
        self.workload.final_reads()
        result = check(self.history)
        counts = self.history.counts()
        if not result.ok:
            path = os.path.join(tempfile.mkdtemp(prefix="eraft-history-"), "history.json")
            self.history.dump(path)
            test.fail(f"{result.summary()} (history kept in {path})")
        test.assertGreater(counts.get("ok", 0), min_ok, counts)


def transient(e: redis.RedisError) -> bool:
    """An error that says "not now" (a slot mid-migration for too long, no
    leader, no answer in time), not that the command or the data is wrong."""
    if isinstance(e, (TryAgainError, ClusterDownError, redis.ConnectionError, redis.TimeoutError)):
        return True
    return str(e).startswith(("TRYAGAIN", "CLUSTERDOWN", "TIMEOUT"))


class ScanLoop(threading.Thread):
    """Full SCANs through the router, one after another, until stopped."""

    def __init__(self, d: Deployment) -> None:
        super().__init__(daemon=True)
        self.d = d
        self.stop = threading.Event()
        self.results: list[list[bytes]] = []
        self.errors: list[redis.RedisError] = []
        self.crashed: BaseException | None = None

    def run(self) -> None:
        try:
            self.scan_until_stopped()
        except BaseException as e:  # reported by check(), not lost in a thread
            self.crashed = e

    def scan_until_stopped(self) -> None:
        c = self.d.client(timeout=30)
        while not self.stop.is_set():
            keys: list[bytes] = []
            cursor = 0
            try:
                while True:
                    cursor, batch = c.scan(cursor, count=37)
                    keys.extend(batch)
                    if cursor == 0:
                        break
            except redis.RedisError as e:  # e.g. -TRYAGAIN for too long
                self.errors.append(e)
                continue
            self.results.append(keys)

    def check(self, test: unittest.TestCase, fixed: set[bytes]) -> None:
        """The loop ended cleanly, every failed SCAN failed with a transient
        error, most SCANs completed, and in each completed one every key of
        ``fixed`` (present throughout) came back exactly once."""
        test.assertFalse(self.is_alive(), "the SCAN loop did not stop")
        test.assertIsNone(self.crashed, "the SCAN loop crashed")
        errors = sorted({f"{type(e).__name__}: {e}" for e in self.errors})
        bad = sorted({f"{type(e).__name__}: {e}" for e in self.errors if not transient(e)})
        test.assertEqual(
            bad[:5], [], f"{len(bad)} kinds of SCAN failure through the router are not transient"
        )
        test.assertGreater(len(self.results), 2, errors[:5])
        test.assertLessEqual(
            len(self.errors),
            len(self.results),
            f"more SCANs failed than completed; errors include {errors[:5]}",
        )
        for i, result in enumerate(self.results):
            test.assertEqual(
                sorted(k for k in result if k in fixed), sorted(fixed), f"SCAN number {i}"
            )


class ShardingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.d = Deployment()
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.stop)
        self.d.start_one_group()

    def add_group_and_rebalance(self) -> int:
        """Group 2 joins and takes half the slots; the config number."""
        self.d.join(2)
        num = self.d.rebalance()
        self.assertEqual(self.owners(0, 16383), {1, 2}, "the rebalance moved no slot")
        return num

    def owners(self, lo: int, hi: int) -> set[int]:
        """The groups that own some slot of lo..hi in the latest config."""
        ranges = self.d.admin("GET", "/config")["ranges"]
        return {int(gid) for first, last, gid in ranges if first <= hi and last >= lo}

    def test_scale_out_routing_and_cluster_clients(self) -> None:
        c = self.d.client()
        c.mset({f"key:{i}": i for i in range(300)})
        c.set("ttl-key", "x", ex=1000)
        c.hset("user:{7}", mapping={f"f{i}": i for i in range(50)})
        c.hset("user:{8}", mapping={"name": "b"})
        self.add_group_and_rebalance()
        # Collections route through the router to their key's group, and moved
        # with their slots row by row.
        self.assertEqual(len(c.hgetall("user:{7}")), 50)
        self.assertEqual(c.hget("user:{8}", "name"), b"b")
        self.assertEqual(c.hincrby("user:{7}", "f3", 10), 13)
        self.assertEqual(c.type("user:{7}"), b"hash")
        with self.assertRaises(redis.exceptions.ClusterCrossSlotError):
            c.execute_command("RENAME", "user:{7}", "user:{8}x")
        # A transaction runs in the group owning its one slot, WATCH included.
        with c.pipeline(transaction=True) as tx:
            tx.watch("user:{7}")
            tx.multi()
            tx.hincrby("user:{7}", "f3", 1)
            tx.hget("user:{7}", "f3")
            self.assertEqual(tx.execute(), [14, b"14"])
        with c.pipeline(transaction=True) as tx:
            tx.watch("user:{7}")
            c.hset("user:{7}", "f3", "0")  # another client's write
            tx.multi()
            tx.hset("user:{7}", "f3", "lost")
            with self.assertRaises(redis.exceptions.WatchError):
                tx.execute()
        self.assertEqual(c.hget("user:{7}", "f3"), b"0")
        # Blocking pops wait on their own connection to the owning group.
        waiter = threading.Thread(
            target=lambda: popped.append(self.d.client(timeout=30).blpop(["q:{7}"], 10))
        )
        popped: list[object] = []
        waiter.start()
        time.sleep(0.5)
        self.assertEqual(c.hget("user:{8}", "name"), b"b")  # the pool is not held up
        c.rpush("q:{7}", "job")
        waiter.join(20)
        self.assertEqual(popped, [(b"q:{7}", b"job")])
        self.assertIsNone(c.blpop(["q:{7}"], 0.2))
        with self.assertRaises(redis.exceptions.ResponseError):
            with c.pipeline(transaction=True) as tx:
                tx.set("user:{7}a", 1)
                tx.set("user:{8}a", 1)
                tx.execute()
        # Everything is still there, now spread over both groups.
        self.assertEqual(
            c.mget([f"key:{i}" for i in range(300)]), [str(i).encode() for i in range(300)]
        )
        self.assertEqual(c.dbsize(), 303)
        self.assertTrue(900 < c.ttl("ttl-key") <= 1000)
        g1, g2 = self.d.groups[1], self.d.groups[2]
        n1, n2 = g1.leader().client().dbsize(), g2.leader().client().dbsize()
        self.assertEqual(n1 + n2, 303)
        self.assertTrue(n1 > 50 and n2 > 50, (n1, n2))
        # SCAN through the router visits both groups.
        self.assertEqual(len(set(c.scan_iter(count=50))), 303)
        # A node of the wrong group redirects; a cross-slot MSET is refused.
        key = "key:7"
        owner = 1 if key_hash_slot(key.encode()) < 8192 else 2
        other = self.d.groups[3 - owner].nodes[0].client()
        with self.assertRaises(redis.exceptions.MovedError) as moved:
            other.get(key)
        self.assertEqual(moved.exception.slot_id, key_hash_slot(key.encode()))
        with self.assertRaises(redis.exceptions.MovedError):  # the router's SCAN step
            other.execute_command("ERAFT.SCAN", key_hash_slot(key.encode()))
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
            "eraft_twisted.ctl",
            "--meta",
            ",".join(f"http://{a}" for a in self.d.admin_addrs()),
        ]
        owner_of_0 = self.d.admin("GET", "/config")["ranges"][0][2]
        out = subprocess.run(
            [*ctl, "move", "0", "999", str(3 - owner_of_0)], capture_output=True, timeout=60
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        moving = [k for k in [*(f"key:{i}" for i in range(300)), "ttl-key"]
                  if key_hash_slot(k.encode()) <= 999]  # fmt: skip
        self.assertIn(
            f"moving data: [{'#' * 20}] 1/1 range  {len(moving)} keys".encode(), out.stdout
        )
        self.assertIn(f"slots 0-999 moved to group {3 - owner_of_0}".encode(), out.stdout)
        self.assertEqual(self.owners(0, 999), {3 - owner_of_0})
        out = subprocess.run([*ctl, "migrations"], capture_output=True, timeout=60)
        self.assertIn(b"groups still moving data: 0", out.stdout)
        self.assertEqual(c.dbsize(), 303)

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
        fixed = {f"scan:{i}".encode() for i in range(400)}
        self.d.client().mset({k: b"x" for k in fixed})
        moved_key = next(k for k in sorted(fixed) if MOVING[0] <= key_hash_slot(k) <= MOVING[1])
        scans = ScanLoop(self.d)
        num = int(self.d.admin("GET", "/config")["num"])
        with CheckedWorkload(self.d, seed=20) as work:
            scans.start()
            try:
                for i in range(20):
                    target = 2 - i % 2
                    previous, num = num, self.d.move(MOVING[0], MOVING[1], target)
                    self.assertGreater(num, previous, f"move {i} made no new config")
                    self.d.wait(lambda n=num: self.d.settled(n), f"config {num} settled")
                    self.assertEqual(self.owners(*MOVING), {target}, f"after move {i}")
                    # The data moved with the slots: the target serves a fixed key.
                    self.assertEqual(self.d.leader(target).client().get(moved_key), b"x")
            finally:
                scans.stop.set()
                scans.join(60)
        work.check(self, min_ok=200)
        # Full SCANs through the router while the range moved: each key that
        # existed throughout came back exactly once per scan.
        scans.check(self, fixed)

    def load_and_add_group(self, n: int) -> dict[str, bytes]:
        """``n`` keys with 200-byte values through the router, then group 2
        registered (owning nothing yet)."""
        c = self.d.client(timeout=30)
        values = {f"m:{i}": b"%07d" % i + b"." * 193 for i in range(n)}
        items = list(values.items())
        for i in range(0, n, 250):
            for attempt in range(5):
                try:
                    c.mset(dict(items[i : i + 250]))  # the same values: safe to resend
                    break
                except redis.ResponseError as e:
                    if attempt == 4 or not str(e).startswith(("TIMEOUT", "CLUSTERDOWN")):
                        raise
        self.d.start_group(2)
        self.d.wait(lambda: "2" in self.d.admin("GET", "/config")["groups"], "group 2 joined")
        return values

    def when_copying(self, action: Any) -> threading.Thread:
        """Run ``action`` the moment group 2's leader is seen copying a range
        (keys copied, not done); a thread polls its INFO for that."""
        leader = self.d.groups[2].leader()
        seen: list[str] = []

        def watch() -> None:
            c = leader.client(timeout=5)
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    info = c.info("sharding")
                except redis.RedisError:
                    continue
                for k, v in info.items():
                    # redis-py parses "config=3,keys=1000,...,done=0" into a dict
                    if k.startswith("migration_") and v.get("done") == 0 and v.get("keys"):
                        seen.append(f"{k}: {v}")
                        action()
                        return
                time.sleep(0.002)

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        t.seen = seen  # type: ignore[attr-defined]
        return t

    def settled_now(self, num: int) -> bool:
        try:
            return self.d.settled(num)
        except (redis.RedisError, RuntimeError, AssertionError):
            return False  # no leader right now

    def check_all(self, values: dict[str, bytes], deleted: frozenset[str] = frozenset()) -> None:
        c = self.d.client(timeout=30)
        names = list(values)
        got: list[bytes | None] = []
        for i in range(0, len(names), 1000):
            got.extend(c.mget(names[i : i + 1000]))
        lost = [k for k, v in zip(names, got, strict=True) if k not in deleted and v != values[k]]
        back = [k for k, v in zip(names, got, strict=True) if k in deleted and v is not None]
        self.assertEqual((lost[:10], len(lost)), ([], 0), "acknowledged keys lost")
        self.assertEqual((back[:10], len(back)), ([], 0), "deleted keys came back")

    def kill_mid_migration(self, group: int) -> None:
        """Rebalance 40,000 keys onto a new group 2 and kill -9 the leader of
        ``group`` while keys are being copied, then restart it: the move
        completes, nothing is lost, and a workload stays linearizable."""
        values = self.load_and_add_group(40000)
        victim = self.d.groups[group].leader()
        with CheckedWorkload(self.d, seed=group) as work:
            time.sleep(0.5)
            watcher = self.when_copying(victim.kill)
            self.assertIsNotNone(self.d.admin("POST", "/rebalance", {}), "POST /rebalance")
            num = self.d.admin("GET", "/config")["num"]
            watcher.join(130)
            self.assertTrue(watcher.seen, "the copy was never seen in progress")  # type: ignore[attr-defined]
            time.sleep(1)
            victim.start()
            victim.wait_up(timeout=60)
            self.d.wait(lambda: self.d.settled(num), f"config {num} settled", timeout=180)
        work.check(self, min_ok=50)
        self.check_all(values)
        # The restarted node caught up: it holds what its leader holds.
        leader = self.d.groups[group].leader()
        self.d.wait(
            lambda: victim.client().dbsize() == leader.client().dbsize(),
            "the restarted node caught up",
        )

    def test_migration_survives_killing_the_source_leader(self) -> None:
        self.kill_mid_migration(1)

    def test_migration_survives_killing_the_target_leader(self) -> None:
        self.kill_mid_migration(2)

    def test_leadership_moving_back_and_forth_while_a_range_moves(self) -> None:
        """Migration steps are fenced by term: with the target group's
        leadership transferred again and again during the copy, no key is
        lost and no deleted key comes back."""
        values = self.load_and_add_group(40000)
        c = self.d.client(timeout=30)
        deleted = frozenset(f"m:{i}" for i in range(0, 40000, 7))
        names = sorted(deleted)
        for i in range(0, len(names), 500):
            c.delete(*names[i : i + 500])
        nodes = self.d.groups[2].nodes
        transfers: list[int] = []
        stop = threading.Event()

        def transfer_again_and_again() -> None:
            while not stop.is_set():
                target = nodes[len(transfers) % len(nodes)]
                try:
                    target.client(timeout=10).execute_command(
                        "RAFT.TRANSFER_LEADER", target.node_id
                    )
                    transfers.append(target.node_id)
                except redis.RedisError:
                    pass  # e.g. a transfer still under way
                time.sleep(0.5)

        transferring = threading.Thread(target=transfer_again_and_again, daemon=True)
        watcher = self.when_copying(transferring.start)
        self.assertIsNotNone(self.d.admin("POST", "/rebalance", {}), "POST /rebalance")
        num = self.d.admin("GET", "/config")["num"]
        watcher.join(130)
        self.assertTrue(watcher.seen, "the copy was never seen in progress")  # type: ignore[attr-defined]
        deadline = time.time() + 180
        try:
            while not self.settled_now(num):
                self.assertLess(time.time(), deadline, "the move did not finish")
                time.sleep(0.3)
        finally:
            stop.set()
            transferring.join(30)
        self.assertGreater(len(transfers), 1)
        self.check_all(values, deleted)
        self.assertEqual(self.d.client().dbsize(), len(values) - len(deleted))


class CollectionMigrationTests(unittest.TestCase):
    def setUp(self) -> None:
        self.d = Deployment()
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.stop)
        self.d.start_one_group()
        self.d.join(2)

    def test_a_200000_member_sorted_set_moves_while_clients_zadd_to_it(self) -> None:
        """The set moves row by row, in chunks; ZADDs through the router
        while it moves all land (they wait out -TRYAGAIN): nothing is lost."""
        members = int(os.environ.get("ERAFT_MOVE_ZSET", "200000"))
        key = "board:{z}"
        slot = key_hash_slot(key.encode())
        c = self.d.client(timeout=60)
        pipe = c.pipeline(transaction=False)
        for start in range(0, members, 2000):
            pipe.zadd(key, {f"m{i}": i for i in range(start, min(members, start + 2000))})
            if len(pipe) >= 8:
                pipe.execute()
        pipe.execute()
        self.assertEqual(c.zcard(key), members)
        source = int(self.d.admin("GET", "/config")["ranges"][0][2])
        added: list[str] = []
        stop = threading.Event()

        def writer() -> None:
            w = self.d.client(timeout=60)
            i = 0
            while not stop.is_set():
                name = f"during{i}"
                try:
                    w.zadd(key, {name: -i})
                except redis.exceptions.RedisError:
                    continue  # outcome unknown: it is not counted either way
                added.append(name)
                i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            num = self.d.move(slot, slot, 3 - source)
            self.d.wait(lambda: self.d.settled(num), f"config {num} settled", timeout=300)
        finally:
            stop.set()
            thread.join(60)
        self.assertGreater(len(added), 10)
        target = self.d.leader(3 - source).client(timeout=60)
        self.assertEqual(target.zcard(key), members + len(added))
        self.assertEqual(target.zscore(key, f"m{members - 1}"), members - 1)
        self.assertEqual(target.zrange(key, 0, 0), [f"during{len(added) - 1}".encode()])
        missing = [m for m in added if target.zscore(key, m) is None]
        self.assertEqual(missing, [])
        # The source dropped its copy.
        self.assertEqual(self.d.leader(source).client().dbsize(), 0)
