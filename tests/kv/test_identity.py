"""Group and cluster ids with real processes: a node pointed at another
group exchanges no Raft message with it, and a kv node or router pointed
at another cluster's meta group refuses it; the logs say why."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from twisted.trial import unittest

from eraft_twisted.testing.procs import TwistdProcess as Proc
from eraft_twisted.testing.procs import admin_call
from tests.procs import Cluster, Node, free_ports
from tests.waiting import wait_until

T = TypeVar("T")


def raft_info(node: Node) -> dict[str, str]:
    text = node.client(timeout=5).execute_command("RAFT.INFO")
    text = text.decode() if isinstance(text, bytes) else str(text)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def log_lines(path: str, text: str) -> list[str]:
    try:
        with open(path, errors="replace") as f:
            return [line for line in f if text in line]
    except OSError:
        return []


def wait(predicate: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """The first true result of ``predicate()``; a Redis or HTTP error is
    "not up yet" (an AssertionError from ``predicate`` fails at once)."""
    return wait_until(predicate, timeout, 0.2, what, ignore=(redis.RedisError, OSError, ValueError))


class CrossGroupTests(unittest.TestCase):
    """Two independent 3-node groups; a node of one is restarted with the
    other group's peer addresses in its --peers."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="eraft-identity-")
        self.groups: list[Cluster] = []
        for name in ("a", "b"):
            os.makedirs(os.path.join(self.dir, name))
            self.groups.append(Cluster(3, base=os.path.join(self.dir, name)))
        for g in self.groups:
            g.start()

    def tearDown(self) -> None:
        for g in self.groups:
            g.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_no_raft_message_crosses_groups(self) -> None:
        a, b = self.groups
        leader_a, leader_b = a.leader(), b.leader()
        self.assertTrue(leader_a.client().set("from-a", "1"))
        self.assertTrue(leader_b.client().set("from-b", "1"))
        ids = {raft_info(n)["raft_group_id"] for n in a.nodes + b.nodes}
        self.assertEqual(len(ids), 2, ids)
        id_a, id_b = raft_info(leader_a)["raft_group_id"], raft_info(leader_b)["raft_group_id"]
        self.assertEqual(raft_info(leader_a)["raft_cluster_id"], "none")
        before_b = raft_info(leader_b)

        # A follower of A comes back with B's addresses for every other member.
        victim = next(n for n in a.nodes if n is not leader_a)
        victim.stop()
        peers = list(b.nodes[0].peers)
        peers[victim.node_id] = victim.peers[victim.node_id]
        victim.peers = peers
        victim.start()
        victim.wait_up()
        b_logs = [n.log_path for n in b.nodes if n.node_id != victim.node_id]
        wait(
            lambda: all(log_lines(p, "refused a peer link") for p in b_logs),
            "group B refusing the stray node",
        )
        wait(
            lambda: len([x for x in log_lines(victim.log_path, "refused this node")
                         if "rpc.transport" in x]) == 2,
            "its side",
        )  # fmt: skip
        time.sleep(3)  # elections, heartbeats and reconnects that would have crossed

        # Group B noticed nothing: same leader, term and members; both serve.
        after_b = raft_info(b.leader())
        for key in ("raft_leader_id", "raft_term", "raft_voters", "raft_learners"):
            self.assertEqual(after_b[key], before_b[key], key)
        members = [v for k, v in after_b.items() if k.startswith("raft_member")]
        self.assertFalse(any(victim.peers[victim.node_id] in m for m in members), members)
        self.assertEqual(raft_info(victim)["raft_group_id"], id_a)
        for g, key in ((a, "from-a"), (b, "from-b")):
            leader = g.leader()
            self.assertTrue(leader.client().set(key + "-2", "2"))
            for n in g.nodes:
                if n is not victim:
                    self.assertEqual(n.client().get(key + "-2"), b"2")
        for n in b.nodes:
            self.assertIsNone(n.client().get("from-a"))
        # The logs say why, once per refused peer (no stream of lines).
        stray = log_lines(b_logs[0], "refused a peer link")
        self.assertEqual(len(stray), 1, stray)
        self.assertIn(f"refuses kv node {victim.node_id} of group {id_a}: another group", stray[0])
        self.assertIn(f"of group {id_b}", stray[0])
        # Once per peer from the peer links (a write the node tried to
        # forward meanwhile may log its own debug line: not a link refusal).
        mine = [
            line
            for line in log_lines(victim.log_path, "refused this node")
            if "rpc.transport" in line
        ]
        self.assertEqual(len(mine), 2, mine)
        self.assertIn("no Raft messages go to it (check --peers)", mine[0])


class WrongMetaTests(unittest.TestCase):
    """Two single-node meta groups (two clusters); a kv node and routers."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="eraft-identity-meta-")
        ports = free_ports(8)
        self.meta_peers = [f"127.0.0.1:{p}" for p in ports[:2]]
        self.admin = [f"127.0.0.1:{p}" for p in ports[2:4]]
        self.kv_peer, self.kv_resp = f"127.0.0.1:{ports[4]}", ports[5]
        self.router_ports = ports[6:8]
        self.procs: list[Any] = []
        for i in range(2):
            self.proc(
                "eraftmeta", "--id", "0", "--data", os.path.join(self.dir, f"meta{i}"),
                "--peers", self.meta_peers[i], "--admin", self.admin[i], "--tick-ms", "50",
                log=f"meta{i}.log",
            )  # fmt: skip
        self.cluster = [
            wait(lambda i=i: admin_call(self.admin[i], "GET", "/status")["cluster_id"], "meta")
            for i in range(2)
        ]

    def tearDown(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def proc(self, *argv: str, log: str) -> Any:
        p = Proc(list(argv), os.path.join(self.dir, log), self.dir)
        p.start()
        self.procs.append(p)
        return p

    def kv(self, meta: str) -> Node:
        os.makedirs(os.path.join(self.dir, "kv"), exist_ok=True)
        extra = ["--tick-ms", "50", "--meta", meta, "--group", "1"]
        node = Node(0, [self.kv_peer], self.kv_resp, os.path.join(self.dir, "kv", "data0"), extra)
        node.start()
        self.procs.append(node)
        node.wait_up()
        return node

    def router(self, i: int, meta: str, *extra: str) -> redis.Redis:
        port = self.router_ports[i]
        self.proc(
            "eraftkdb",
            "--listen",
            f"127.0.0.1:{port}",
            "--meta",
            meta,
            *extra,
            log=f"router{i}.log",
        )
        client = redis.Redis(port=port, socket_timeout=10, socket_connect_timeout=10)
        wait(client.ping, f"router {i}")
        return client

    def test_kv_node_and_router_refuse_a_meta_group_of_another_cluster(self) -> None:
        c1, c2 = self.cluster
        self.assertNotEqual(c1, c2)
        node = self.kv(self.meta_peers[0])
        wait(lambda: "1" in admin_call(self.admin[0], "GET", "/config")["groups"], "registered")
        info = raft_info(node)
        self.assertEqual((info["raft_cluster_id"], info["raft_group_id"]), (c1, f"{c1}/1"))
        wait(lambda: node.client().set("k", "v"), "config 1 applied")

        # Restarted pointing at the other cluster's meta group.
        node.stop()
        node.extra[node.extra.index("--meta") + 1] = self.meta_peers[1]
        node.start()
        node.wait_up()
        line = wait(lambda: log_lines(node.log_path, "(check --meta)"), "the kv node's refusal")
        self.assertIn(f"meta at {self.meta_peers[1]} refused this kv node", line[0])
        self.assertIn(f"meta node 0 of cluster {c2} refuses kv node 0 of group {c1}/1", line[0])
        wait(
            lambda: log_lines(os.path.join(self.dir, "meta1.log"), "refused a client link"), "meta"
        )
        self.assertEqual(raft_info(node)["raft_group_id"], f"{c1}/1")
        self.assertEqual(node.client().get("k"), b"v")  # still serves what it owns
        time.sleep(2)
        self.assertEqual(admin_call(self.admin[1], "GET", "/config")["groups"], {})
        self.assertEqual(len(log_lines(node.log_path, "(check --meta)")), 1)

        # A router told which cluster to expect refuses the other one...
        wrong = self.router(0, self.meta_peers[1], "--cluster", c1)

        def refusal() -> str:
            # Until the meta node has answered once, the router only knows
            # it has no config ("unreachable (no answer yet)").
            try:
                wrong.get("k")
            except redis.ResponseError as e:
                return "meta group refused" in str(e) and str(e)
            raise AssertionError("a router at the wrong meta group served a read")

        wait(refusal, "the router's refusal")
        with self.assertRaisesRegex(redis.ResponseError, f"cluster {c2} refuses router"):
            wrong.get("k")
        self.assertEqual(len(log_lines(os.path.join(self.dir, "router0.log"), "check --meta")), 1)
        # ... and one at the right meta group learns its cluster and routes.
        right = self.router(1, self.meta_peers[0])
        self.assertEqual(right.get("k"), b"v")
        self.assertEqual(log_lines(os.path.join(self.dir, "router1.log"), "check --meta"), [])
