"""A member whose data directory is wiped under a running group (real processes)."""

from __future__ import annotations

import os
import shutil
import subprocess

from twisted.trial import unittest

from eraft_twisted.raft.types import NONE
from eraft_twisted.storage.leveldb import LevelDBStorage
from tests.kv.test_membership import raft_info, wait_for
from tests.procs import Cluster, twistd_env

KEYS = 300


class LostDataTests(unittest.TestCase):
    def setUp(self) -> None:
        self.cluster = Cluster(3).start()
        self.addCleanup(shutil.rmtree, self.cluster.dir, True)
        self.addCleanup(self.cluster.stop)

    def test_a_wiped_member_exits_with_the_reason_then_rejoins_with_join(self) -> None:
        leader = self.cluster.leader()
        c = leader.client()
        pipe = c.pipeline(transaction=False)
        for i in range(KEYS):
            pipe.set(f"lost:{i}", i)
        pipe.execute()
        wiped = next(n for n in self.cluster.nodes if n is not leader)
        wait_for(
            lambda: int(raft_info(wiped)["raft_applied_index"]) >= KEYS,
            what="the follower has every key",
        )
        wiped.kill()
        shutil.rmtree(wiped.data)

        # Restarted with its original command line: it must not take part.
        wiped.proc = proc = subprocess.Popen(
            wiped.argv(),
            env=twistd_env(),
            cwd=os.path.dirname(wiped.data),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.fail(f"a member that lost its data kept running: {wiped.tail_log()}")
        self.assertNotEqual(proc.returncode, 0)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertRegex(
            lines[0],
            rf"^eraftkv: fatal: node {wiped.node_id} lost raft log entries it had "
            r"acknowledged: .* restart it with --join",
        )
        with open(wiped.log_path) as f:
            self.assertIn(lines[0].split("fatal: ", 1)[1], f.read())
        # What it wrote before exiting (opening a missing directory would
        # make an empty storage, with no vote whatever the node did).
        self.assertTrue(os.path.isdir(wiped.data), "the node never opened its data directory")
        st = LevelDBStorage.open(wiped.data, synchronous=True)
        try:
            self.assertEqual(st.hard_state.vote, NONE)  # it voted for no one
        finally:
            st.close()
        self.assertEqual(self.cluster.leader().node_id, leader.node_id)

        # --join is the way back: a learner that catches up, then a voter.
        wiped.extra = [*wiped.extra, "--join"]
        wiped.start()
        wiped.wait_up()
        wait_for(
            lambda: wiped.client(timeout=3).get(f"lost:{KEYS - 1}") == str(KEYS - 1).encode(),
            timeout=30,
            what="the rejoined member serves the keys",
        )
        values = wiped.client().mget([f"lost:{i}" for i in range(KEYS)])
        self.assertEqual(values, [str(i).encode() for i in range(KEYS)])
        wait_for(
            lambda: (
                str(wiped.node_id) in raft_info(self.cluster.leader())["raft_voters"].split(",")
            ),
            timeout=30,
            what="the rejoined member is a voter again",
        )
        self.assertEqual(raft_info(self.cluster.leader())["raft_voters"], "0,1,2")
        self.assertTrue(wiped.client().set("after-rejoin", "1"))
        self.assertEqual(leader.client().get("after-rejoin"), b"1")
