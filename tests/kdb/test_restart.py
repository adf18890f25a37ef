"""A sharded cluster survives restarts: real processes stopped (SIGTERM) or
killed (-9) and started again on their data directories.

Each test body runs in a thread (``deferToThread``) so that trial's
``timeout`` can fire; whatever happens, the cleanups stop every process.
On a failure the deployment's directory (data and logs) is kept and the
tail of every process's log is part of the failure message.
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, TryAgainError
from twisted.internet import defer, threads
from twisted.trial import unittest

from eraft_twisted.hashslot import key_hash_slot
from tests.kdb.sharded import Deployment
from tests.kdb.test_sharding import MOVING, CheckedWorkload
from tests.procs import Node
from tests.waiting import wait_until


def in_thread(fn: Callable[[Any], None]) -> Callable[[Any], defer.Deferred[None]]:
    """Run a blocking test method in a thread: trial's timeout then works,
    and a failure keeps the logs and shows their tails."""

    @functools.wraps(fn)
    def wrapper(self: RestartTests) -> defer.Deferred[None]:
        def body() -> None:
            try:
                fn(self)
            except BaseException as e:
                self.d.keep = True
                raise self.failureException(
                    f"{type(e).__name__}: {e}\n{traceback.format_exc()}\n"
                    f"timeline:\n{self.timeline_text()}\n"
                    f"data and logs kept in {self.d.dir}\n{self.d.tails()}"
                ) from e
            self.passed = True

        # Trial's timeout fires the Deferred it was given; the thread then
        # goes on until it fails (every process is stopped by the cleanups),
        # and what it returns that late must not land on the next test.
        outcome: defer.Deferred[None] = defer.Deferred()

        def finished(result: Any) -> None:
            if not outcome.called:
                outcome.callback(result)

        threads.deferToThread(body).addBoth(finished)
        return outcome

    return wrapper


# The data moved mid-kill: enough that the copy takes seconds (20 chunks
# of ~1 MB), so a follower is killed after the first chunk and is back
# before the last one on a loaded machine.
KEYS = 20_000
VALUE = 1000


# Errors of a write that was not applied (-CLUSTERDOWN: an election under
# way, -TRYAGAIN) or whose outcome is unknown (-TIMEOUT, a lost connection).
TRANSIENT = (ClusterDownError, TryAgainError, redis.ConnectionError, redis.TimeoutError)


def chunks(items: list[Any], n: int) -> list[list[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


class RestartTests(unittest.TestCase):
    """Meta group of 3, kv groups of 3 and the router, as real processes."""

    def setUp(self) -> defer.Deferred[None]:
        self.passed = False
        self.t0 = time.monotonic()
        self.timeline: list[str] = []
        self.d = Deployment()
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self._keep_if_failed)
        self.addCleanup(self.d.stop)
        return threads.deferToThread(self.d.start_one_group)

    def _keep_if_failed(self) -> None:
        """A test that timed out (or failed in setUp) keeps its logs too."""
        if not self.passed and not self.d.keep:
            self.d.keep = True
            sys.stderr.write(f"\n{self.id()}: data and logs kept in {self.d.dir}\n")
            sys.stderr.write(f"timeline:\n{self.timeline_text()}\n")
            sys.stderr.write(self.d.tails() + "\n")

    # -- helpers -------------------------------------------------------------------
    def note(self, what: str) -> None:
        """Record a step of the test, with its time, for a failure message."""
        self.timeline.append(f"{time.monotonic() - self.t0:7.2f}s {what}")

    def timeline_text(self) -> str:
        return "\n".join(self.timeline)

    def again(self, what: str, fn: Callable[[], Any], attempts: int = 10) -> Any:
        """``fn()``, sent again after an election or an unknown outcome: only
        for writes that may be applied twice (SET/MSET of the same values,
        an INCR whose caller adopts the value it returns)."""
        for attempt in range(attempts):
            try:
                return fn()
            except redis.RedisError as e:
                transient = isinstance(e, TRANSIENT) or str(e).startswith("TIMEOUT")
                if not transient or attempt == attempts - 1:
                    raise
                self.note(f"{what}: {type(e).__name__}: {e}; sending it again")
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def set_all(self, gid: int, values: dict[str, str], batch: int = 250) -> None:
        """SET every key on group ``gid``'s leader, pipelined in batches; a
        batch that fails (the leader changed) goes again to the new leader."""

        def send(part: list[str]) -> None:
            pipe = self.d.leader(gid).client(timeout=30).pipeline(transaction=False)
            for k in part:
                pipe.set(k, values[k])
            pipe.execute()

        for part in chunks(list(values), batch):
            self.again(f"SET {len(part)} keys on group {gid}", functools.partial(send, part))

    def assert_values(
        self, client: Any, expected: dict[str, str], how: str, pipelined: bool = False
    ) -> None:
        """Every key of ``expected`` reads back with its value: MGETs of 500
        keys, or with ``pipelined`` pipelines of 500 GETs (for a kv node,
        where an MGET must stay in one slot)."""
        keys = list(expected)
        missing: list[tuple[str, Any]] = []
        for batch in chunks(keys, 500):
            if isinstance(client, RedisCluster):
                got = client.mget_nonatomic(batch)
            elif pipelined:
                pipe = client.pipeline(transaction=False)
                for k in batch:
                    pipe.get(k)
                got = pipe.execute()
            else:
                got = client.mget(batch)
            missing += [
                (k, v) for k, v in zip(batch, got, strict=True) if v != expected[k].encode()
            ]
        self.assertEqual(
            missing[:10], [], f"{how}: {len(missing)} of {len(keys)} keys wrong or missing"
        )

    @staticmethod
    def follower(cluster: Any) -> Node:
        """A node that is not the leader (the lowest-numbered one)."""
        leader = cluster.leader()
        return next(n for n in cluster.nodes if n is not leader)

    def copy_progress(self, gid: int, lo: int, hi: int) -> dict[str, int]:
        """How far group ``gid``'s leader has copied slots lo..hi (INFO sharding)."""
        info = self.d.leader(gid).client().info("sharding")
        state = info.get(f"migration_{lo}_{hi}")  # redis-py parses "k=v,..." into a dict
        return {k: int(v) for k, v in state.items()} if isinstance(state, dict) else {}

    # -- (a) every process stopped and started again ------------------------------
    @in_thread
    def test_whole_cluster_restart_after_two_rebalances(self) -> None:
        d = self.d
        d.join(2)
        c = d.client()
        expected = {f"key:{i}": f"value-{i}" for i in range(3000)}
        for batch in chunks(list(expected), 500):
            self.again("MSET", functools.partial(c.mset, {k: expected[k] for k in batch}))
        self.note(f"{len(expected)} keys written")
        counts = {f"ctr:{i}": 0 for i in range(30)}

        def bump() -> None:
            for i, key in enumerate(counts):
                for _ in range(i % 4 + 1):
                    counts[key] = self.again(f"INCR {key}", functools.partial(c.incr, key))

        bump()
        self.again("SET ttl-key", functools.partial(c.set, "ttl-key", "t", ex=1000))
        self.note(f"config {d.rebalance()}: rebalanced over 2 groups")
        bump()
        d.join(3)
        num = d.rebalance()
        self.note(f"config {num}: rebalanced over 3 groups")
        bump()
        expected.update({k: str(v) for k, v in counts.items()})
        self.assert_values(c, expected, "through the router before the restart")
        before = d.dbsizes()
        self.assertEqual(sum(before.values()), len(expected) + 1, before)
        self.assertTrue(all(n > 500 for n in before.values()), before)
        config_before = d.admin("GET", "/config")
        self.note(f"DBSIZE per group {before}; restarting everything")

        d.restart_all()
        self.note("every process up again")

        # Every node is back at the config it had (no config replayed or skipped).
        for gid, cluster in sorted(d.groups.items()):
            for node in cluster.nodes:
                info = d.info(node, "sharding")
                self.assertEqual(
                    int(info["shard_config"]), num, f"group {gid} node {node.node_id}: {info}"
                )
        d.wait(lambda: d.settled(num), f"config {num} settled after the restart")
        self.note("every group has a leader at the same config")
        self.assertEqual(d.admin("GET", "/config"), config_before)
        c = d.client()
        self.assert_values(c, expected, "through the router after the restart")
        self.assertTrue(900 < c.ttl("ttl-key") <= 1000, c.ttl("ttl-key"))
        self.assertEqual(d.dbsizes(), before)
        self.assertEqual(c.dbsize(), sum(before.values()))

        # A cluster-aware client pointed at one kv node finds every key.
        rc = RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", d.groups[3].nodes[1].resp_port)],
            socket_timeout=10,
        )
        try:
            self.assert_values(rc, expected, "through RedisCluster after the restart")
            # Writes go on, through both.
            for i, key in enumerate(counts):
                counts[key] = (rc if i % 2 else c).incr(key)
                self.assertEqual(counts[key], int(expected[key]) + 1, key)
            new = {f"new:{i}": f"n{i}" for i in range(300)}
            c.mset(dict(list(new.items())[:150]))
            for k, v in list(new.items())[150:]:
                self.assertTrue(rc.set(k, v))
            self.assert_values(c, new, "new keys through the router")
            self.assert_values(rc, new, "new keys through RedisCluster")
            for key, value in counts.items():
                self.assertEqual(rc.get(key), str(value).encode(), key)
        finally:
            rc.close()
        after = d.dbsizes()
        self.note(f"DBSIZE per group after the new writes {after}")
        self.assertEqual(sum(after.values()), sum(before.values()) + len(new), after)

    test_whole_cluster_restart_after_two_rebalances.timeout = 300  # type: ignore[attr-defined]

    # -- (b) a follower killed in the middle of a migration ----------------------
    def kill_follower_mid_migration(self, role: str, seed: int) -> None:
        """Move slots ``MOVING`` (``KEYS`` keys of ``VALUE`` bytes) from group 1 to a
        new group 2 and ``kill -9`` a follower of the ``role`` ("source" or
        "target") group once the first chunk is installed; restart it on its
        data while the copy goes on. The move completes, a workload through
        the router stays linearizable, no key is lost, and the restarted
        follower ends with its leader's DBSIZE."""
        d = self.d
        lo, hi = MOVING
        big: dict[str, str] = {}
        i = 0
        while len(big) < KEYS:
            key = f"big:{i}"
            if lo <= key_hash_slot(key.encode()) <= hi:
                big[key] = f"{i}:" + "x" * VALUE
            i += 1
        self.set_all(1, big)
        self.note(f"{len(big)} keys written to group 1")
        d.join(2)
        victim_group = 1 if role == "source" else 2
        with CheckedWorkload(d, seed=seed) as work:
            time.sleep(0.5)
            num = d.move(lo, hi, 2)
            self.note(f"config {num}: slots {lo}-{hi} to group 2")
            d.wait(
                lambda: self.copy_progress(2, lo, hi).get("keys", 0) >= 1000,
                "the first chunk copied",
            )
            # The lowest-numbered follower: node 0 unless it leads, and node 0
            # is the source server the target pulls from first.
            victim = self.follower(d.groups[victim_group])
            victim.kill()
            progress = self.copy_progress(2, lo, hi)
            self.note(f"killed group {victim_group} node {victim.node_id}; copied {progress}")
            self.assertFalse(progress.get("done"), f"the copy ended before the kill: {progress}")
            victim.start()
            victim.wait_up()
            self.note(f"restarted it; copied {self.copy_progress(2, lo, hi)}")
            d.wait(lambda: d.settled(num), f"config {num} settled", timeout=150)
            self.note("moved")
            time.sleep(1)
        work.check(self, min_ok=50)
        self.note(f"history checked: {work.history.counts()}")
        keys = list(big)
        sample = {k: big[k] for k in keys[::20]}
        self.assert_values(d.client(timeout=30), sample, "moved keys through the router")
        self.note(f"{len(sample)} moved keys read back through the router")
        self.assert_values(
            d.leader(2).client(timeout=30), big, "the moved keys on group 2", pipelined=True
        )
        self.note("every moved key read back from group 2's leader")
        group = d.groups[victim_group]

        def caught_up() -> bool:
            want = group.leader().client().dbsize()
            got = victim.client().dbsize()
            return bool(want == got)

        d.wait(caught_up, f"group {victim_group} node {victim.node_id} caught up (DBSIZE)")
        sizes = d.dbsizes()
        self.note(f"DBSIZE per group {sizes}")
        self.assertGreaterEqual(sizes[2], len(big), sizes)

    @in_thread
    def test_killing_a_source_follower_mid_migration(self) -> None:
        self.kill_follower_mid_migration("source", seed=31)

    test_killing_a_source_follower_mid_migration.timeout = 300  # type: ignore[attr-defined]

    @in_thread
    def test_killing_a_target_follower_mid_migration(self) -> None:
        self.kill_follower_mid_migration("target", seed=32)

    test_killing_a_target_follower_mid_migration.timeout = 300  # type: ignore[attr-defined]

    # -- (c) the meta group alone, then the router alone --------------------------
    @in_thread
    def test_meta_group_and_router_restart_under_writes(self) -> None:
        d = self.d
        d.join(2)
        d.rebalance()
        fixed = {f"fixed:{i}": str(i) for i in range(500)}
        self.again("MSET", functools.partial(d.client().mset, fixed))
        with CheckedWorkload(d, seed=33) as work:

            def served_since(first: int) -> int:
                ops = work.history.ops[first:]
                return sum(1 for op in ops if op.outcome == "ok" and op.t_complete is not None)

            time.sleep(2)
            d.stop_meta()
            first = len(work.history)  # the first operation sent with the meta group down
            self.note("meta group stopped")
            time.sleep(3)  # down for a while; then until enough was served meanwhile
            wait_until(
                lambda: served_since(first) > 10,
                message="operations served while the meta group is down",
            )
            last = len(work.history)
            d.start_meta()
            self.note("meta group up again")
            time.sleep(2)
            d.restart_router()
            self.note("router restarted")
            time.sleep(2)
            # The meta group still moves slots after its restart.
            d.join(3)
            num = d.rebalance()
            self.note(f"config {num}: rebalanced over 3 groups")
            time.sleep(1)
        work.check(self, min_ok=100)
        self.note(f"history checked: {work.history.counts()}")
        # The kv groups and the router kept serving while the meta group was
        # down: operations sent and answered in that time.
        ops = work.history.ops
        up = ops[last].t_invoke
        served = [
            op
            for op in ops[first:last]
            if op.outcome == "ok" and op.t_complete is not None and op.t_complete < up
        ]
        self.assertGreater(len(served), 10, "operations served while the meta group was down")
        c = d.client()
        self.assert_values(c, fixed, "through the router after the restarts")
        sizes = d.dbsizes()
        self.assertEqual(sum(sizes.values()), c.dbsize(), sizes)
        self.assertTrue(all(n > 50 for n in sizes.values()), sizes)
        self.assertEqual(d.admin("GET", "/config")["num"], num)
        self.assertEqual(d.admin("GET", "/migrations")["in_flight"], 0)

    test_meta_group_and_router_restart_under_writes.timeout = 240  # type: ignore[attr-defined]
