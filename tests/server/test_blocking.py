"""Blocking pops on a replicated group, in-process: a push on any node wakes
a client waiting on any node, each element goes to exactly one waiter, and
a leader change does not lose a waiter or an element."""

from __future__ import annotations

from eraft_twisted.resp.encoder import NULL_ARRAY

from .base import ClusterCase


class BlockingPopTests(ClusterCase):
    def test_a_push_on_the_leader_wakes_a_waiter_on_a_follower(self) -> None:
        follower = self.follower()
        waiting = follower.client(fresh=True).call("BLPOP", "q", "0")
        self.cluster.advance(0.5)
        self.assertFalse(waiting.called)
        self.assertEqual(self.leader().call("RPUSH", "q", "job"), 1)
        self.assertEqual(self.cluster.wait(waiting), [b"q", b"job"])
        self.assertEqual(self.leader().call("LLEN", "q"), 0)

    def test_each_element_goes_to_exactly_one_waiter(self) -> None:
        waits = [n.client(fresh=True).call("BRPOP", "jobs", "3") for n in self.nodes() * 2]
        self.cluster.advance(0.5)
        self.leader().call("LPUSH", "jobs", "1", "2", "3")
        results = [self.cluster.wait(d) for d in waits]
        got = sorted(r[1] for r in results if r is not NULL_ARRAY)
        self.assertEqual(got, [b"1", b"2", b"3"])
        self.assertEqual(sum(1 for r in results if r is NULL_ARRAY), len(waits) - 3)
        self.assertEqual(self.leader().call("LLEN", "jobs"), 0)

    def test_a_waiter_survives_a_leader_change(self) -> None:
        follower = self.follower()
        waiting = follower.client(fresh=True).call("BLMOVE", "src", "dst", "LEFT", "RIGHT", "0")
        self.cluster.advance(0.5)
        self.assertEqual(self.leader().call("RAFT.TRANSFER_LEADER"), "OK")
        self.cluster.advance(1)
        self.assertEqual(self.leader().call("RPUSH", "src", "x"), 1)
        self.assertEqual(self.cluster.wait(waiting), b"x")
        self.assertEqual(self.leader().call("LRANGE", "dst", "0", "-1"), [b"x"])

    def test_a_timeout_answers_nil_and_takes_nothing(self) -> None:
        node = self.follower()
        waiting = node.client(fresh=True).call("BLPOP", "empty", "0.5")
        self.cluster.advance(0.6)
        self.assertIs(self.cluster.wait(waiting), NULL_ARRAY)
        self.assertEqual(self.leader().call("RPUSH", "empty", "kept"), 1)
        self.cluster.advance(1)
        self.assertEqual(self.leader().call("LRANGE", "empty", "0", "-1"), [b"kept"])
