"""The real ``eraftctl``: exit codes and one-line messages, and
``--server`` against a real 3-node group."""

from __future__ import annotations

import json
import os
import subprocess
import time

from twisted.trial import unittest

from tests.procs import ROOT, Cluster, eraftctl, free_ports


class CliProcessTests(unittest.TestCase):
    """The real console entry point: exit codes and one-line messages."""

    def run_ctl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return eraftctl(*argv, timeout=30)

    def test_connection_refused(self) -> None:
        port = free_ports(1)[0]
        p = self.run_ctl("--meta", f"http://127.0.0.1:{port}", "status")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertEqual(
            p.stderr,
            f"eraftctl: error: cannot reach the meta server http://127.0.0.1:{port}: "
            "connection refused\n",
        )

    def test_usage_errors_exit_2(self) -> None:
        for argv in (["frobnicate"], ["move", "1", "x", "2"], [], ["join", "1"]):
            p = self.run_ctl(*argv)
            self.assertEqual(p.returncode, 2, argv)
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertTrue(lines[0].startswith("eraftctl: error: "), p.stderr)

    def test_help(self) -> None:
        p = self.run_ctl("--help")
        self.assertEqual(p.returncode, 0)
        for cmd in ("status", "config", "join", "leave", "move", "rebalance", "migrations"):
            self.assertIn(cmd, p.stdout)
        for cmd in ("transfer-leader", "add-node", "remove-node", "--server HOST:PORT"):
            self.assertIn(cmd, p.stdout)
        p = self.run_ctl("transfer-leader", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--server HOST:PORT[,...] transfer-leader [NODE_ID]", p.stdout)
        self.assertTrue(os.path.isdir(ROOT))


class CliClusterTests(unittest.TestCase):
    """eraftctl --server against a real 3-node group."""

    def test_transfer_leader_and_status(self) -> None:
        cluster = Cluster(3).start()
        self.addCleanup(cluster.stop)
        old = cluster.leader()
        follower = next(n for n in cluster.nodes if n is not old)
        server = f"127.0.0.1:{follower.resp_port}"
        deadline = time.time() + 20
        while follower.client().info("raft")["raft_leader_id"] != old.node_id:
            self.assertLess(time.time(), deadline, "the follower never heard of the leader")
            time.sleep(0.1)
        p = eraftctl("--server", server, "--json", "transfer-leader")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        res = json.loads(p.stdout)
        self.assertEqual((res["server"], res["reply"]), (server, "OK"))
        self.assertEqual(res["previous_leader"], old.node_id)
        new = res["leader"]
        self.assertIn(new, [n.node_id for n in cluster.nodes if n is not old])
        self.assertEqual(res["leader_addr"], old.peers[new])
        info = cluster.nodes[new].client().execute_command("INFO", "raft")
        self.assertEqual(info["raft_role"], "leader")
        p = eraftctl("--server", server, "status")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"node {new} ({old.peers[new]})", p.stdout.splitlines()[1])
        # An error reply: one line on stderr, exit code 1.
        p = eraftctl("--server", server, "transfer-leader", "7")
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(
            p.stderr, f"eraftctl: error: {server} replied: ERR node 7 is not a voter\n"
        )
