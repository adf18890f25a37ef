"""Where a command goes, and what a client is told, when the leader is
elsewhere, unreachable, killed or restarted (in-process, simulated time)."""

from __future__ import annotations

import re

from twisted.internet import defer

from eraft_twisted.testing.cluster import ReplyError

from .base import ClusterCase

UNKNOWN_OR_NOT_APPLIED = re.compile(r"^(TIMEOUT|CLUSTERDOWN)")


class ForwardingTests(ClusterCase):
    def test_every_follower_forwards_to_the_leader_and_reads_its_own_write(self) -> None:
        for follower in self.cluster.followers():
            key = f"f{follower.node_id}"
            self.assertEqual(follower.call("INCRBY", key, 5), 5)
            self.assertEqual(follower.call("GET", key), b"5")

    def test_a_follower_cut_off_from_the_leader_acknowledges_nothing(self) -> None:
        leader = self.leader()
        follower = self.follower()
        self.cluster.isolate(follower)
        error = follower.error("SET", "cut", "1")
        self.assertRegex(error, UNKNOWN_OR_NOT_APPLIED)
        self.assertRegex(follower.error("GET", "cut"), UNKNOWN_OR_NOT_APPLIED)
        # The majority carries on meanwhile.
        self.assertEqual(leader.call("SET", "majority", "1"), "OK")
        self.cluster.heal()
        self.assertEqual(follower.call("GET", "majority"), b"1")

    def test_an_isolated_leader_never_acknowledges(self) -> None:
        leader = self.leader()
        self.cluster.isolate(leader)
        self.assertRegex(leader.error("SET", "isolated", "x"), UNKNOWN_OR_NOT_APPLIED)
        self.assertRegex(leader.error("GET", "isolated"), UNKNOWN_OR_NOT_APPLIED)
        # Meanwhile the others elected a leader of a later term.
        new = self.leader()
        self.assertIsNot(new, leader)
        self.assertEqual(new.call("SET", "after", "1"), "OK")
        self.cluster.heal()
        # The old leader follows the new one and serves what it missed.
        self.cluster.run_until(lambda: leader.node.leader == new.node_id)
        self.assertEqual(leader.call("GET", "after"), b"1")

    def test_pipelined_writes_through_a_follower_apply_in_order(self) -> None:
        follower = self.follower()
        client = follower.client()
        replies = [client.call("APPEND", "log", f"{i},") for i in range(100)]
        lengths = [self.cluster.wait(d) for d in replies]
        self.assertEqual(lengths, sorted(lengths))
        expected = "".join(f"{i}," for i in range(100)).encode()
        self.assertEqual(self.leader().call("GET", "log"), expected)


class FaultTests(ClusterCase):
    def test_kill_the_leader_then_restart_it_catches_up(self) -> None:
        leader = self.leader()
        self.assertEqual(leader.call("SET", "before", "1"), "OK")
        leader.kill()
        killed_at = self.cluster.clock.seconds()
        new = self.leader()
        # A new leader within a few election timeouts (0.5 s each here).
        self.assertLess(self.cluster.clock.seconds() - killed_at, 3)
        for i in range(20):
            self.assertEqual(new.call("SET", f"after:{i}", i), "OK")
        leader.start()
        # The restarted node serves the writes it missed (read via ReadIndex).
        self.assertEqual(leader.call("GET", "after:19"), b"19")
        self.assertEqual(leader.call("GET", "before"), b"1")

    def test_a_power_cut_of_every_node_loses_nothing_acknowledged(self) -> None:
        """Writes in flight when the power goes: every acknowledged INCR
        survives on the synced data alone, and no more than were sent."""
        client = self.leader().client()
        sent: list[defer.Deferred[int]] = []
        acked: list[int] = []

        def incr() -> None:
            d = client.call("INCR", "counter")
            d.addCallbacks(acked.append, lambda f: None)
            sent.append(d)

        for i in range(200):  # one every millisecond
            self.cluster.clock.callLater(i / 1000, incr)
        self.cluster.advance(0.1)  # the power goes with writes in flight
        for node in self.nodes():
            node.kill(power_loss=True)
        self.assertGreater(len(acked), 10)
        self.assertLess(len(acked), len(sent))
        for node in self.cluster.groups[1]:
            node.start()
        value = int(self.leader().call("GET", "counter"))
        self.assertGreaterEqual(value, len(acked))
        self.assertLessEqual(value, len(sent))

    def test_a_write_in_flight_to_a_dying_leader_is_unknown_not_failed(self) -> None:
        leader = self.leader()
        follower = self.follower()
        d = follower.client().call("SET", "inflight", "1")
        self.cluster.advance(0.0015)  # forwarded, not answered yet
        leader.kill()
        with self.assertRaises(ReplyError) as e:
            self.cluster.wait(d)
        # Forwarded, so possibly applied: never "not applied" (CLUSTERDOWN).
        self.assertRegex(str(e.exception), r"^TIMEOUT .*may or may not have been applied")
