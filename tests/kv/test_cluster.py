"""End to end: real eraftkv processes on 127.0.0.1, real Redis clients.

The slow tier: what needs real sockets, processes and clients. Command
behaviour (FLUSHALL, SCAN/KEYS, errors, ...) is checked in-process in
``tests/server/``."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import redis
from twisted.internet import defer
from twisted.trial import unittest

from tests.procs import TWISTD, Cluster, free_ports, twistd_env
from tests.waiting import wait_until

REDIS_CLI = shutil.which("redis-cli")
LOG_TIME_LAG_MS = 500
"""How far the log's time may lag the leader's clock on a loaded machine
(a time entry every 100 ms of it while keys have deadlines)."""


def cli(port: int, *args: str) -> str:
    out = subprocess.run(
        [REDIS_CLI or "redis-cli", "-p", str(port), *args],
        capture_output=True,
        timeout=20,
        check=True,
    )
    return out.stdout.decode().strip()


class ThreeNodeGroupTests(unittest.TestCase):
    """A 3-node group shared by the read/write tests of this class."""

    shared: Cluster | None = None

    def setUp(self) -> None:
        # trial has no setUpClass: start the group once, stop it at exit.
        cls = type(self)
        if cls.shared is None:
            cls.shared = Cluster(3).start()
            atexit.register(cls.shared.stop)
            atexit.register(shutil.rmtree, cls.shared.dir, True)
        self.cluster = cls.shared
        self.cluster.leader()

    def test_redis_py_through_every_node(self) -> None:
        for node in self.cluster.nodes:
            c = node.client()
            key = f"py:{node.node_id}"
            self.assertTrue(c.set(key, "v1"))
            self.assertEqual(c.get(key), b"v1")
            self.assertEqual(c.incr(f"ctr:{node.node_id}"), 1)
            self.assertTrue(c.expire(key, 100))
            self.assertTrue(0 < c.ttl(key) <= 100)
            self.assertEqual(c.delete(key, "nope"), 1)
            self.assertIsNone(c.get(key))
        # Every node sees every write (linearizable reads on followers too).
        for node in self.cluster.nodes:
            c = node.client()
            self.assertEqual(c.mget([f"ctr:{i}" for i in range(3)]), [b"1", b"1", b"1"])

    def test_keys_expire_on_time_as_in_redis(self) -> None:
        """A short TTL expires about when it says, on every node (the leader
        looks every 50 ms and writes a time entry when idle), and TTL counts
        down with nothing else written, as a client of Redis expects."""
        c = self.cluster.nodes[1].client()
        self.assertTrue(c.set("short", "v", px=100))
        set_start = time.time()
        self.assertTrue(c.set("ten", "v", ex=10))
        set_end = time.time()
        time.sleep(0.4)  # past the 100 ms TTL
        # Gone everywhere soon after (the log's time lags the leader's clock
        # by ~150 ms; a loaded machine may delay the leader's sweep a little).
        wait_until(
            lambda: all(n.client().get("short") is None for n in self.cluster.nodes),
            timeout=2,
            interval=0.05,
            message="a 100 ms key expired on every node",
        )
        time.sleep(1.5)  # idle: only time entries move the log's time
        for node in self.cluster.nodes:
            read_start = time.time()
            pttl = node.client().pttl("ten")
            read_end = time.time()
            # The deadline is the leader's clock when it appended the SET plus
            # 10 s; PTTL counts from the log's time, up to a sweep behind.
            low = 10_000 - (read_end - set_start) * 1000
            high = 10_000 - (read_start - set_end) * 1000 + LOG_TIME_LAG_MS
            self.assertTrue(
                low <= pttl <= high, f"PTTL {pttl} on node {node.node_id}, not in {low}..{high}"
            )
        self.assertEqual(c.info("keyspace")["db0"]["expires"], 1)

    def test_cluster_commands_and_cluster_clients(self) -> None:
        from redis.cluster import ClusterNode, RedisCluster

        node = self.cluster.nodes[0]
        c = node.client()
        self.assertEqual(c.execute_command("CLUSTER", "KEYSLOT", "foo"), 12182)
        self.assertEqual(
            c.execute_command("CLUSTER", "KEYSLOT", "{user1000}.following"),
            c.execute_command("CLUSTER", "KEYSLOT", "{user1000}.followers"),
        )

        # Every member announced its RESP address; the leader is the master.
        def all_members_listed() -> list[list[object]] | None:
            slots = c.execute_command("CLUSTER", "SLOTS")
            return slots if len(slots[0]) == 2 + 3 else None

        slots = wait_until(all_members_listed, message="CLUSTER SLOTS listing all three members")
        lo, hi, master, *replicas = slots[0]
        self.assertEqual((lo, hi, len(replicas)), (0, 16383, 2))
        leader = self.cluster.leader()
        self.assertEqual(master[1], leader.resp_port)
        self.assertIn(b"cluster_state:ok", c.execute_command("CLUSTER", "INFO"))
        nodes = c.execute_command("CLUSTER", "NODES")
        nodes = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
        self.assertEqual(nodes.count("master"), 1)
        self.assertIn("myself", nodes)
        rc = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", node.resp_port)])
        try:
            self.assertTrue(rc.set("rc:a", "1"))
            self.assertEqual(rc.get("rc:a"), b"1")
        finally:
            rc.close()
        if REDIS_CLI is not None:
            self.assertEqual(cli(self.cluster.nodes[1].resp_port, "-c", "set", "rc:b", "2"), "OK")
            self.assertEqual(cli(self.cluster.nodes[2].resp_port, "-c", "get", "rc:b"), "2")

    def test_reads_on_every_node_right_after_flushall(self) -> None:
        """Once FLUSHALL is acknowledged, no read on any node counts or lists
        a flushed key, while the delete may still be running on disk."""
        writer = self.cluster.nodes[0].client()
        clients = [n.client() for n in self.cluster.nodes for _ in range(2)]
        for round_ in range(6):
            writer.mset({f"hammer:{round_}:{i}": b"x" * 64 for i in range(3000)})
            self.assertTrue(writer.flushall())
            seen: list[tuple[int, int, int]] = []

            def read(c: redis.Redis, i: int, seen: list[tuple[int, int, int]]) -> None:
                for _ in range(5):
                    seen.append((i, c.dbsize(), len(c.keys("hammer:*"))))

            threads = [
                threading.Thread(target=read, args=(c, i, seen), daemon=True)
                for i, c in enumerate(clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            stale = [s for s in seen if s[1] or s[2]]
            self.assertEqual(stale, [], f"round {round_}: reads saw flushed keys")
            self.assertEqual(len(seen), 5 * len(clients))

    def test_redis_cli(self) -> None:
        if REDIS_CLI is None:
            raise unittest.SkipTest("redis-cli is not installed")
        port = self.cluster.nodes[2].resp_port
        self.assertEqual(cli(port, "set", "cli:a", "hello world"), "OK")
        self.assertEqual(cli(port, "get", "cli:a"), "hello world")
        self.assertEqual(cli(self.cluster.nodes[0].resp_port, "get", "cli:a"), "hello world")
        self.assertIn("raft_role:", cli(port, "info", "raft"))
        self.assertEqual(cli(port, "del", "cli:a"), "1")
        self.assertIn("ERR unknown command", cli(port, "nosuchcommand"))

    def test_config_get_reports_the_nodes_settings_and_set_is_refused(self) -> None:
        node = self.cluster.nodes[1]
        c = node.client()
        self.assertEqual(c.config_get("append*"), {"appendonly": "yes", "appendfsync": "always"})
        got = c.config_get("port", "dir", "cluster-enabled", "no-such-*")
        self.assertEqual(
            got,
            {
                "port": str(node.resp_port),
                "dir": os.path.abspath(node.data),
                "cluster-enabled": "no",
            },
        )
        with self.assertRaisesRegex(redis.ResponseError, "CONFIG SET is not supported"):
            c.config_set("maxmemory", "1mb")
        with self.assertRaisesRegex(redis.ResponseError, "wrong number of arguments"):
            c.execute_command("CONFIG", "GET")

    def test_big_value_replicates(self) -> None:
        # 16 MiB, written through a follower: forwarded, then replicated in
        # AMP commands whose values are split at AMP's 64 KiB limit.
        value = os.urandom(16 * 1024 * 1024)
        leader = self.cluster.leader()
        follower = next(n for n in self.cluster.nodes if n is not leader)
        c = follower.client(timeout=60)
        self.assertTrue(c.set("big", value))
        for node in self.cluster.nodes:
            self.assertEqual(node.client(timeout=60).get("big"), value)

    def test_txredisapi(self) -> defer.Deferred[None]:
        import txredisapi

        port = self.cluster.nodes[1].resp_port

        @defer.inlineCallbacks
        def run() -> object:
            conn = yield txredisapi.Connection("127.0.0.1", port, reconnect=False)
            try:
                yield conn.set("tx:a", "hello")
                value = yield conn.get("tx:a")
                self.assertEqual(value, "hello")
                deleted = yield conn.delete("tx:a")
                self.assertEqual(deleted, 1)
            finally:
                yield conn.disconnect()

        return run()


class FaultTests(unittest.TestCase):
    """Kills and pauses; each test gets a fresh group."""

    def setUp(self) -> None:
        self.cluster = Cluster(3).start()

    def tearDown(self) -> None:
        self.cluster.stop()
        shutil.rmtree(self.cluster.dir, ignore_errors=True)

    def test_kill_leader_then_restart_catches_up(self) -> None:
        leader = self.cluster.leader()
        leader.client().set("before", "1")
        leader.kill()
        t0 = time.time()
        new = self.cluster.leader(exclude=(leader.node_id,))
        self.assertLess(time.time() - t0, 10)
        c = new.client()
        for i in range(20):
            c.set(f"after:{i}", i)
        leader.start()
        leader.wait_up()
        # The restarted node serves the writes it missed (read via ReadIndex).
        self.assertEqual(leader.client().get("after:19"), b"19")
        self.assertEqual(leader.client().get("before"), b"1")

    def test_kill_all_mid_write_loses_nothing_acknowledged(self) -> None:
        acked = 0
        unknown = 0
        stop = threading.Event()
        leader = self.cluster.leader()

        def writer() -> None:
            nonlocal acked, unknown
            c = leader.client(timeout=2)
            while not stop.is_set():
                try:
                    c.incr("counter")
                    acked += 1
                except redis.RedisError:
                    unknown += 1
                    return

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(1.5)  # writes in flight when the power goes
        wait_until(lambda: acked > 10 or not t.is_alive(), message="writes acknowledged")
        for node in self.cluster.nodes:
            node.kill()
        stop.set()
        t.join(10)
        self.assertGreater(acked, 10)
        for node in self.cluster.nodes:
            node.start()
        for node in self.cluster.nodes:
            node.wait_up()
        value = int(self.cluster.leader().client().get("counter") or 0)
        self.assertGreaterEqual(value, acked)
        self.assertLessEqual(value, acked + unknown)

    def test_isolated_leader_never_acknowledges(self) -> None:
        leader = self.cluster.leader()
        followers = [n for n in self.cluster.nodes if n is not leader]
        for f in followers:
            f.kill(signal.SIGSTOP)
        try:
            c = leader.client(timeout=20)
            with self.assertRaises(redis.ResponseError) as e:
                c.set("isolated", "x")
            self.assertRegex(str(e.exception), "TIMEOUT|CLUSTERDOWN")
            with self.assertRaises(redis.ResponseError):
                c.get("isolated")
        finally:
            for f in followers:
                f.kill(signal.SIGCONT)
        # The group recovers; the failed write's outcome is unknown, not a lie.
        self.assertTrue(self.cluster.leader().client().set("after-heal", "1"))


class CommandLineTests(unittest.TestCase):
    def run_twistd(self, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [TWISTD, "-n", "--pidfile=", "eraftkv", *args],
            capture_output=True,
            timeout=30,
            env=twistd_env(),
            cwd=cwd,
        )

    def test_bad_option_is_one_line_and_exit_2(self) -> None:
        for args in (
            ["--id", "7"],
            ["--peers", "nonsense"],
            ["--fsync", "sometimes"],
            ["--bogus"],
            ["--config", "/nonexistent.conf"],
        ):
            r = self.run_twistd(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
            lines = r.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, (args, lines))
            self.assertTrue(lines[0].startswith("eraftkv: error:"), lines)

    def test_bad_config_file_line(self) -> None:
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "bad.conf")
        with open(path, "w") as f:
            f.write("# comment\nid = 0\nflavour = strawberry\n")
        r = self.run_twistd("--config", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.conf:3: unknown option 'flavour'", r.stderr.decode())

    def test_config_file_and_locked_data_dir(self) -> None:
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        peer, resp = free_ports(2)
        path = os.path.join(d, "node.conf")
        with open(path, "w") as f:
            f.write(f"peers = 127.0.0.1:{peer}\nresp = 127.0.0.1:{resp}\ndata = {d}/data\n")
        proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "eraftkv", "--config", path],
            env=twistd_env(),
            cwd=d,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 20
            while True:
                try:
                    c = redis.Redis(port=resp, socket_timeout=5)
                    self.assertTrue(c.set("a", "b"))
                    break
                except redis.ConnectionError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.1)
            self.assertEqual(c.get("a"), b"b")
            r = self.run_twistd("--config", path, "--resp", f"127.0.0.1:{free_ports(1)[0]}")
            self.assertEqual(r.returncode, 2)
            self.assertIn("is in use by another process", r.stderr.decode())
        finally:
            proc.terminate()
            proc.wait(20)
