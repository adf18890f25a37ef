"""Snapshots, membership changes and leader transfer with real processes."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable

import redis
from redis.exceptions import ClusterDownError
from twisted.trial import unittest

from tests.procs import Cluster, Node, free_ports
from tests.waiting import wait_until


def raft_info(node: Node) -> dict[str, str]:
    text = node.client().execute_command("RAFT.INFO").decode()
    return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)


def wait_for(
    predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Until ``predicate()`` is true; a Redis error (an election) is "not yet"."""
    wait_until(predicate, timeout, 0.1, what, ignore=(redis.RedisError,))


class Writer(threading.Thread):
    """INCRs one counter, remembering acknowledged values; checks that reads
    never go back in time."""

    def __init__(self, nodes: list[Node]) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes
        self.stop = threading.Event()
        self.acked = 0
        self.errors: list[redis.RedisError] = []
        self.went_back: list[tuple[int, int]] = []

    def run(self) -> None:
        last_seen = 0
        i = 0
        while not self.stop.is_set():
            node = self.nodes[i % len(self.nodes)]
            i += 1
            try:
                c = node.client(timeout=3)
                value = c.incr("membership:counter")
                self.acked = max(self.acked, value)
                seen = int(c.get("membership:counter") or 0)
                if seen < last_seen:
                    self.went_back.append((last_seen, seen))
                last_seen = max(last_seen, seen)
            except redis.RedisError as e:
                self.errors.append(e)
                time.sleep(0.05)

    def unexpected_errors(self) -> list[str]:
        """Errors other than "no leader now" or "no answer in time", which
        a member change or a leader transfer may cause."""
        return [
            f"{type(e).__name__}: {e}"
            for e in self.errors
            if not isinstance(e, (ClusterDownError, redis.ConnectionError, redis.TimeoutError))
            and not str(e).startswith(("TIMEOUT", "CLUSTERDOWN"))
        ]


class SnapshotTests(unittest.TestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(3, extra=["--tick-ms", "50", "--snapshot-entries", "200"]).start()
        self.addCleanup(shutil.rmtree, self.cluster.dir, True)
        self.addCleanup(self.cluster.stop)

    def test_node_down_for_50000_writes_catches_up_through_a_snapshot(self) -> None:
        leader = self.cluster.leader()
        lagging = next(n for n in self.cluster.nodes if n is not leader)
        lagging.kill()
        c = leader.client(timeout=60)
        for start in range(0, 50_000, 5_000):
            pipe = c.pipeline(transaction=False)
            for i in range(start, start + 5_000):
                pipe.set(f"snap:{i}", i)
            pipe.execute()
        self.assertGreater(int(raft_info(leader)["raft_first_index"]), 1000)
        lagging.start()
        lagging.wait_up()
        self.assertEqual(lagging.client().get("snap:49999"), b"49999")
        self.assertEqual(lagging.client().get("snap:0"), b"0")
        # It got the state machine by snapshot: its log starts past the gap.
        self.assertGreater(int(raft_info(lagging)["raft_first_index"]), 40_000)
        self.assertEqual(lagging.client().dbsize(), 50_000)

    def test_raft_snapshot_compacts_now(self) -> None:
        leader = self.cluster.leader()
        for i in range(50):
            leader.client().set(f"s{i}", i)
        self.assertEqual(leader.client().execute_command("RAFT.SNAPSHOT"), b"OK")
        info = raft_info(leader)
        self.assertEqual(int(info["raft_first_index"]), int(info["raft_applied_index"]) + 1)
        self.assertEqual(leader.client().get("s49"), b"49")


class MembershipTests(unittest.TestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(3).start()
        self.addCleanup(shutil.rmtree, self.cluster.dir, True)
        self.addCleanup(self.cluster.stop)

    def add_node(self, nid: int) -> Node:
        peer, resp = free_ports(2)
        peers = self.cluster.nodes[0].peers + [f"127.0.0.1:{peer}"]
        # Every node gets a full peer list; existing ones learn new addresses
        # from the membership change itself.
        while len(peers) <= nid:
            peers.insert(-1, "127.0.0.1:1")
        node = Node(
            nid,
            peers,
            resp,
            os.path.join(self.cluster.dir, f"data{nid}"),
            ["--tick-ms", "50", "--join"],
        )
        node.start()
        node.wait_up()
        self.cluster.nodes.append(node)
        return node

    def test_grow_transfer_and_shrink_under_writes(self) -> None:
        leader = self.cluster.leader()
        writer = Writer(list(self.cluster.nodes))
        writer.start()
        try:
            # Grow 3 -> 5: each joins as a learner and is promoted once caught up.
            for nid in (3, 4):
                self.add_node(nid)
                wait_for(
                    lambda nid=nid: (
                        str(nid) in raft_info(self.cluster.leader())["raft_voters"].split(",")
                    ),
                    what=f"node {nid} promoted",
                )
            self.assertEqual(raft_info(self.cluster.leader())["raft_voters"], "0,1,2,3,4")
            # Leadership to each node in turn.
            for target in range(5):
                ok = (
                    self.cluster.leader()
                    .client()
                    .execute_command("RAFT.TRANSFER_LEADER", str(target))
                )
                self.assertEqual(ok, b"OK")
                wait_for(
                    lambda t=target: raft_info(self.cluster.nodes[t])["raft_role"] == "leader",
                    what=f"node {target} leads",
                )
            # Shrink 5 -> 3, removing the leader among others.
            for victim in (4, 0):
                leader = self.cluster.leader()
                self.assertEqual(
                    leader.client().execute_command("RAFT.NODE", "REMOVE", str(victim)), b"OK"
                )
                wait_for(
                    lambda v=victim: (
                        str(v)
                        not in raft_info(self.cluster.leader(exclude=(v,)))["raft_voters"].split(
                            ","
                        )
                    ),
                    what=f"node {victim} removed",
                )
            time.sleep(0.5)
        finally:
            writer.stop.set()
            writer.join(10)
        self.assertEqual(writer.went_back, [])
        self.assertGreater(writer.acked, 10)
        self.assertEqual(writer.unexpected_errors(), [])
        remaining = [self.cluster.nodes[i] for i in (1, 2, 3)]
        final = self.cluster.leader(exclude=(0, 4))
        self.assertEqual(raft_info(final)["raft_voters"], "1,2,3")
        for node in remaining:
            self.assertGreaterEqual(int(node.client().get("membership:counter")), writer.acked)

    def test_add_errors(self) -> None:
        c = self.cluster.leader().client()
        with self.assertRaisesRegex(redis.ResponseError, "already a voter"):
            c.execute_command("RAFT.NODE", "ADD", "1", "127.0.0.1:9")
        with self.assertRaisesRegex(redis.ResponseError, "bad address"):
            c.execute_command("RAFT.NODE", "ADD", "9", "nowhere")
        with self.assertRaisesRegex(redis.ResponseError, "not a member"):
            c.execute_command("RAFT.NODE", "REMOVE", "7")
        with self.assertRaisesRegex(redis.ResponseError, "unknown subcommand"):
            c.execute_command("RAFT.NODE", "FROB", "7")

    def test_replace_a_dead_node(self) -> None:
        leader = self.cluster.leader()
        dead = next(n for n in self.cluster.nodes if n is not leader)
        dead.kill()
        leader.client().set("before-replace", "1")
        self.assertEqual(
            leader.client().execute_command("RAFT.NODE", "REMOVE", str(dead.node_id)), b"OK"
        )
        new = self.add_node(3)
        wait_for(
            lambda: (
                "3"
                in raft_info(self.cluster.leader(exclude=(dead.node_id,)))["raft_voters"].split(",")
            ),
            what="node 3 promoted",
        )
        self.assertEqual(new.client().get("before-replace"), b"1")
        self.assertTrue(new.client().set("after-replace", "2"))
        voters = raft_info(self.cluster.leader(exclude=(dead.node_id,)))["raft_voters"]
        self.assertEqual(
            sorted(voters.split(",")),
            sorted(str(n.node_id) for n in self.cluster.nodes if n is not dead),
        )

    def test_transfer_without_id_picks_a_follower(self) -> None:
        leader = self.cluster.leader()
        term = int(raft_info(leader)["raft_term"])
        self.assertEqual(leader.client().execute_command("RAFT.TRANSFER_LEADER"), b"OK")

        def new_leader() -> Node | None:
            """The node the old leader now follows, once that node leads."""
            info = raft_info(leader)
            if info["raft_role"] != "follower" or info["raft_leader_id"] in (
                "none",
                info["raft_node_id"],
            ):
                return None
            new = self.cluster.nodes[int(info["raft_leader_id"])]
            return new if raft_info(new)["raft_role"] == "leader" else None

        new = wait_until(
            new_leader,
            timeout=20,
            message=f"node {leader.node_id} to hand leadership to a follower",
            ignore=(redis.RedisError,),
        )
        self.assertGreater(int(raft_info(new)["raft_term"]), term)
        # From a follower, the request is forwarded to the leader.
        follower = next(n for n in self.cluster.nodes if n is not new)
        self.assertEqual(
            follower.client().execute_command("RAFT.TRANSFER_LEADER", str(follower.node_id)),
            b"OK",
        )
        wait_for(lambda: raft_info(follower)["raft_role"] == "leader", what="follower leads")
