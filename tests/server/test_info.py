"""INFO and RAFT.INFO on an in-process three-node group."""

from __future__ import annotations

from eraft_twisted.resp.client import parse_info

from .base import ClusterCase


def sections(text: bytes) -> list[str]:
    return [line[2:] for line in text.decode().split("\r\n") if line.startswith("# ")]


class InfoTests(ClusterCase):
    def test_default_info_has_every_section_in_redis_form(self) -> None:
        node = self.nodes()[0]
        node.call("SET", "a", "1")
        text = node.call("INFO")
        self.assertEqual(
            sections(text),
            [
                "Server",
                "Clients",
                "Persistence",
                "Stats",
                "Replication",
                "Raft",
                "Sharding",
                "Keyspace",
            ],
        )
        info = parse_info(text)
        self.assertEqual(info["redis_mode"], "standalone")
        self.assertEqual(info["tcp_port"], (node.resp_address or "").rpartition(":")[2])
        self.assertEqual(info["shard_mode"], "single-group")
        self.assertEqual(info["db0"], "keys=1,expires=0,avg_ttl=0")
        self.assertGreaterEqual(int(info["connected_clients"]), 1)
        self.assertEqual(info["fsync"], "always")
        for everything in ("all", "everything", "default"):
            self.assertEqual(sections(node.call("INFO", everything)), sections(text))

    def test_one_section_and_unknown_sections(self) -> None:
        node = self.nodes()[1]
        self.assertEqual(sections(node.call("INFO", "raft")), ["Raft"])
        self.assertEqual(sections(node.call("INFO", "RePlication")), ["Replication"])
        self.assertEqual(node.call("INFO", "nosuchsection"), b"")
        self.assertEqual(node.error("INFO", "a", "b"), "ERR syntax error")

    def test_role_follows_leadership(self) -> None:
        leader = self.leader()
        self.assertEqual(leader.info("replication")["role"], "master")
        for follower in self.cluster.followers():
            self.assertEqual(follower.info("replication")["role"], "slave")
            self.assertEqual(follower.info("raft")["raft_role"], "follower")

    def test_keyspace_counts_keys_and_deadlines(self) -> None:
        node = self.nodes()[2]
        self.assertEqual(node.call("INFO", "keyspace"), b"# Keyspace\r\n")
        node.call("MSET", "k1", "v", "k2", "v")
        node.call("SET", "k3", "v", "EX", 100)
        self.assertEqual(node.info("keyspace")["db0"], "keys=3,expires=1,avg_ttl=0")
        node.call("HSET", "h", "f", "v")
        node.call("HSET", "h2", "f", "v")
        node.call("EXPIRE", "h2", 100)
        keyspace = node.info("keyspace")
        self.assertEqual(keyspace["db0"], "keys=5,expires=2,avg_ttl=0")
        self.assertEqual(keyspace["db0_types"], "string=3,hash=2,list=0,set=0,zset=0")

    def test_stats_count_proposals_and_reads(self) -> None:
        leader = self.leader()
        before = leader.info("stats")
        leader.call("SET", "s", "1")
        leader.call("GET", "s")
        after = leader.info("stats")
        self.assertEqual(int(after["total_proposals"]), int(before["total_proposals"]) + 1)
        self.assertGreater(int(after["total_reads"]), int(before["total_reads"]))


class RaftInfoTests(ClusterCase):
    def test_raft_info_on_every_node(self) -> None:
        leader = self.leader()
        self.cluster.advance(2)  # heartbeats carry the commit index everywhere
        for node in self.nodes():
            info = node.raft_info()
            self.assertEqual(info["raft_node_id"], str(node.node_id))
            self.assertEqual(info["raft_leader_id"], str(leader.node_id))
            self.assertEqual(info["raft_leader_addr"], self.cluster.peers[1][leader.node_id])
            self.assertEqual(info["raft_voters"], "0,1,2")
            self.assertEqual(info["raft_learners"], "")
            self.assertEqual(info["raft_num_members"], "3")
            self.assertEqual(info["raft_cluster_id"], "none")
            self.assertEqual(len(info["raft_group_id"]), 16)
            self.assertEqual(info["raft_commit_index"], info["raft_applied_index"])
            expected = "leader" if node is leader else "follower"
            self.assertEqual(info["raft_role"], expected)
            me = info[f"raft_member{node.node_id}"]
            self.assertIn("self=yes", me)
        # Every member of one group shares the group id.
        self.assertEqual(len({n.raft_info()["raft_group_id"] for n in self.nodes()}), 1)

    def test_the_leader_reports_each_members_progress(self) -> None:
        leader = self.leader()
        leader.call("SET", "x", "1")
        self.cluster.advance(1)
        info = leader.raft_info()
        for nid in range(3):
            member = dict(kv.split("=", 1) for kv in info[f"raft_member{nid}"].split(","))
            self.assertEqual(member["role"], "voter")
            self.assertEqual(member["addr"], self.cluster.peers[1][nid])
            self.assertEqual(member["lag"], "0")
            self.assertEqual(member["match"], info["raft_last_index"])

    def test_raft_info_takes_no_arguments(self) -> None:
        self.assertIn("wrong number of arguments", self.nodes()[0].error("RAFT.INFO", "x"))
