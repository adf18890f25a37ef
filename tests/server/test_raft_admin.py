"""RAFT.NODE, RAFT.TRANSFER_LEADER and RAFT.SNAPSHOT on an in-process group:
membership changes, leadership transfer and snapshots, under writes."""

from __future__ import annotations

from eraft_twisted.testing.cluster import ClusterNode, ReplyError

from .base import ClusterCase


def voters(node: ClusterNode) -> list[str]:
    return node.raft_info()["raft_voters"].split(",")


class Writer:
    """INCRs one counter through every node in turn, one command per
    :meth:`step`; remembers what was acknowledged and checks that reads
    never go back in time."""

    def __init__(self, nodes: list[ClusterNode]) -> None:
        self.nodes = nodes
        self.acked = 0
        self.last_seen = 0
        self.went_back: list[tuple[int, int]] = []
        self.errors: list[str] = []
        self.i = 0

    def step(self) -> None:
        running = [n for n in self.nodes if n.running]
        node = running[self.i % len(running)]
        self.i += 1
        try:
            self.acked = max(self.acked, node.call("INCR", "counter", timeout=10))
            seen = int(node.call("GET", "counter", timeout=10) or 0)
        except ReplyError as e:
            self.errors.append(str(e))
            return
        if seen < self.last_seen:
            self.went_back.append((self.last_seen, seen))
        self.last_seen = max(self.last_seen, seen)

    def unexpected_errors(self) -> list[str]:
        """Errors other than "no leader now" or "no answer in time"."""
        return [e for e in self.errors if not e.startswith(("TIMEOUT", "CLUSTERDOWN"))]


class MembershipTests(ClusterCase):
    def writes_until(self, writer: Writer, predicate: object, what: str) -> None:
        for _ in range(400):
            writer.step()
            if predicate():  # type: ignore[operator]
                return
        self.fail(f"timed out waiting for {what}")

    def test_grow_transfer_and_shrink_under_writes(self) -> None:
        nodes = self.cluster.groups[1]
        writer = Writer(nodes)
        # Grow 3 -> 5: each joins as a learner and is promoted once caught up.
        for nid in (3, 4):
            self.cluster.join_node()
            self.writes_until(
                writer,
                lambda nid=nid: str(nid) in voters(self.leader()),
                f"node {nid} promoted",
            )
        self.assertEqual(voters(self.leader()), ["0", "1", "2", "3", "4"])
        # Leadership to each node in turn.
        for target in range(5):
            self.assertEqual(self.leader().call("RAFT.TRANSFER_LEADER", target), "OK")
            self.writes_until(writer, lambda t=target: nodes[t].is_leader, f"node {target} leading")
        # Shrink 5 -> 3, removing the leader among others.
        for victim in (4, 0):
            self.assertEqual(self.leader().call("RAFT.NODE", "REMOVE", victim), "OK")
            self.writes_until(
                writer,
                lambda v=victim: str(v) not in voters(self.cluster.leader()),
                f"node {victim} removed",
            )
            nodes[victim].stop()
        for _ in range(20):
            writer.step()
        self.assertEqual(writer.went_back, [])
        self.assertGreater(writer.acked, 10)
        self.assertEqual(writer.unexpected_errors(), [])
        self.assertEqual(voters(self.leader()), ["1", "2", "3"])
        for nid in (1, 2, 3):
            self.assertGreaterEqual(int(nodes[nid].call("GET", "counter")), writer.acked)

    def test_add_errors(self) -> None:
        leader = self.leader()
        self.assertIn("already a voter", leader.error("RAFT.NODE", "ADD", 1, "127.0.0.1:9"))
        self.assertIn("bad address", leader.error("RAFT.NODE", "ADD", 9, "nowhere"))
        self.assertIn("not a member", leader.error("RAFT.NODE", "REMOVE", 7))
        self.assertIn("unknown subcommand", leader.error("RAFT.NODE", "FROB", 7))
        self.assertIn("invalid node id", leader.error("RAFT.NODE", "REMOVE", "x"))
        self.assertIn("wrong number of arguments", leader.error("RAFT.NODE", "ADD", 9))

    def test_replace_a_dead_node(self) -> None:
        leader = self.leader()
        dead = self.follower()
        dead.kill()
        self.assertEqual(leader.call("SET", "before-replace", "1"), "OK")
        self.assertEqual(leader.call("RAFT.NODE", "REMOVE", dead.node_id), "OK")
        new = self.cluster.join_node()
        self.cluster.run_until(lambda: "3" in voters(self.cluster.leader()))
        self.assertEqual(new.call("GET", "before-replace"), b"1")
        self.assertEqual(new.call("SET", "after-replace", "2"), "OK")
        expected = sorted(str(n.node_id) for n in self.cluster.groups[1] if n is not dead)
        self.assertEqual(sorted(voters(self.leader())), expected)

    def test_a_learner_added_by_raft_node_add_gets_promoted(self) -> None:
        leader = self.leader()
        leader.call("SET", "k", "v")
        new = self.cluster.join_node(start=False)
        self.assertEqual(leader.call("RAFT.NODE", "ADD", 3, self.cluster.peers[1][3]), "OK")
        self.assertEqual(leader.raft_info()["raft_learners"], "3")
        new.start()
        self.cluster.run_until(lambda: "3" in voters(self.cluster.leader()))
        self.assertEqual(new.raft_info()["raft_learners"], "")
        self.assertEqual(new.call("GET", "k"), b"v")


class TransferTests(ClusterCase):
    def test_transfer_without_id_picks_a_follower(self) -> None:
        leader = self.leader()
        term = int(leader.raft_info()["raft_term"])
        self.assertEqual(leader.call("RAFT.TRANSFER_LEADER"), "OK")
        new = self.leader()
        self.assertIsNot(new, leader)
        self.assertGreater(int(new.raft_info()["raft_term"]), term)
        info = leader.raft_info()
        self.assertEqual(info["raft_role"], "follower")
        self.assertEqual(info["raft_leader_id"], str(new.node_id))
        # From a follower, the request is forwarded to the leader.
        follower = next(n for n in self.nodes() if n is not new)
        self.assertEqual(follower.call("RAFT.TRANSFER_LEADER", follower.node_id), "OK")
        self.assertIs(self.leader(), follower)

    def test_transfer_to_the_leader_itself_and_to_a_stranger(self) -> None:
        leader = self.leader()
        self.assertEqual(leader.call("RAFT.TRANSFER_LEADER", leader.node_id), "OK")
        self.assertIs(self.leader(), leader)
        self.assertIn("not a voter", leader.error("RAFT.TRANSFER_LEADER", 7))
        self.assertIn("wrong number of arguments", leader.error("RAFT.TRANSFER_LEADER", 1, 2))

    def test_transfer_to_an_unreachable_follower_fails_and_the_leader_resumes(self) -> None:
        leader = self.leader()
        target = self.follower()
        self.cluster.isolate(target)
        error = leader.error("RAFT.TRANSFER_LEADER", target.node_id)
        self.assertIn("did not complete", error)
        self.assertIs(self.leader(), leader)
        self.assertEqual(leader.call("SET", "still", "leading"), "OK")


class SnapshotTests(ClusterCase):
    options = {"snapshot_entries": 200}

    def test_raft_snapshot_compacts_now(self) -> None:
        leader = self.leader()
        for i in range(50):
            leader.call("SET", f"s{i}", i)
        self.assertEqual(leader.call("RAFT.SNAPSHOT"), "OK")
        info = leader.raft_info()
        self.assertEqual(int(info["raft_first_index"]), int(info["raft_applied_index"]) + 1)
        self.assertEqual(leader.call("GET", "s49"), b"49")

    def test_a_node_down_for_many_writes_catches_up_through_a_snapshot(self) -> None:
        leader = self.leader()
        lagging = self.follower()
        lagging.kill()
        client = leader.client()
        for start in range(0, 3000, 500):
            sets = [client.call("SET", f"snap:{i}", i) for i in range(start, start + 500)]
            for d in sets:
                self.cluster.wait(d)
        self.assertGreater(int(leader.raft_info()["raft_first_index"]), 1000)
        lagging.start()
        self.assertEqual(lagging.call("GET", "snap:2999"), b"2999")
        self.assertEqual(lagging.call("GET", "snap:0"), b"0")
        # It got the state machine by snapshot: its log starts past the gap.
        self.assertGreater(int(lagging.raft_info()["raft_first_index"]), 2000)
        self.assertEqual(lagging.call("DBSIZE"), 3000)
        self.assertEqual(lagging.node.snapshot_receiver.received, 1)
