"""CLUSTER commands on in-process nodes: one group owning every slot, and
two sharded groups with a meta group after a rebalance."""

from __future__ import annotations

from eraft_twisted.hashslot import key_hash_slot
from eraft_twisted.resp.client import parse_info
from eraft_twisted.server.cluster import node_name
from eraft_twisted.testing.cluster import ReplyError

from .base import ClusterCase


def endpoint(address: str | None) -> list[object]:
    host, _, port = (address or "").rpartition(":")
    return [host.encode(), int(port)]


class SingleGroupTests(ClusterCase):
    def announced(self) -> list[list[object]]:
        """CLUSTER SLOTS once every member announced its RESP address."""
        node = self.nodes()[0]
        return self.cluster.run_until(
            lambda: (slots := node.call("CLUSTER", "SLOTS")) and len(slots[0]) == 5 and slots
        )

    def test_keyslot(self) -> None:
        node = self.nodes()[0]
        self.assertEqual(node.call("CLUSTER", "KEYSLOT", "foo"), 12182)
        self.assertEqual(
            node.call("CLUSTER", "KEYSLOT", "{user1000}.following"),
            node.call("CLUSTER", "KEYSLOT", "{user1000}.followers"),
        )
        self.assertIn("wrong number of arguments", node.error("CLUSTER", "KEYSLOT"))

    def test_slots_list_every_member_with_the_leader_first(self) -> None:
        lo, hi, master, *replicas = self.announced()[0]
        self.assertEqual((lo, hi, len(replicas)), (0, 16383, 2))
        leader = self.leader()
        self.assertEqual(master[:2], endpoint(leader.resp_address))
        self.assertEqual(master[2], node_name("kv-1", leader.node_id).encode())
        self.assertEqual(
            sorted(r[:2] for r in replicas),
            sorted(endpoint(n.resp_address) for n in self.cluster.followers()),
        )

    def test_the_master_follows_a_leadership_transfer(self) -> None:
        self.announced()
        old = self.leader()
        new = self.follower()
        self.assertEqual(old.call("RAFT.TRANSFER_LEADER", new.node_id), "OK")
        self.assertIs(self.leader(), new)
        for node in self.nodes():
            master = node.call("CLUSTER", "SLOTS")[0][2]
            self.assertEqual(master[:2], endpoint(new.resp_address))

    def test_info_nodes_shards_and_myid(self) -> None:
        self.announced()
        node = self.nodes()[1]
        info = parse_info(node.call("CLUSTER", "INFO"))
        self.assertEqual(info["cluster_state"], "ok")
        self.assertEqual(info["cluster_slots_assigned"], "16384")
        self.assertEqual(info["cluster_known_nodes"], "3")
        self.assertEqual(info["cluster_size"], "1")
        me = node_name("kv-1", node.node_id)
        self.assertEqual(node.call("CLUSTER", "MYID"), me.encode())
        lines = node.call("CLUSTER", "NODES").decode().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertEqual(sum("master" in line.split()[2].split(",") for line in lines), 1)
        mine = next(line for line in lines if line.startswith(me))
        self.assertIn("myself", mine)
        master = next(line for line in lines if "master" in line.split()[2].split(","))
        self.assertTrue(master.endswith(" 0-16383"))
        (shard,) = node.call("CLUSTER", "SHARDS")
        fields = dict(zip(shard[::2], shard[1::2], strict=True))
        self.assertEqual(fields[b"slots"], [0, 16383])
        roles = sorted(dict(zip(n[::2], n[1::2], strict=True))[b"role"] for n in fields[b"nodes"])
        self.assertEqual(roles, [b"master", b"replica", b"replica"])

    def test_unknown_subcommand(self) -> None:
        self.assertIn("unknown subcommand", self.nodes()[0].error("CLUSTER", "FROB").lower())


class ShardedTests(ClusterCase):
    groups = 2

    def setUp(self) -> None:
        super().setUp()
        self.first = self.cluster.groups[1][0]
        # Group 1 owns every slot until a rebalance.
        client = self.first.client()
        sets = [client.call("SET", f"key:{i}", i) for i in range(50)]
        self.assertEqual([self.cluster.wait(d) for d in sets], ["OK"] * 50)

    def rebalance(self) -> None:
        self.cluster.meta_op("rebalance")
        self.cluster.settle()

    def owner(self, key: str) -> int:
        num = self.cluster.settle()
        config = self.cluster.meta_leader().server.app.history.query(num)
        slot = key_hash_slot(key.encode())
        return next(gid for lo, hi, gid in config.ranges if lo <= slot <= hi)

    def test_before_a_rebalance_group_1_owns_everything(self) -> None:
        other = self.cluster.groups[2][0]
        slots = other.call("CLUSTER", "SLOTS")
        self.assertEqual([s[:2] for s in slots], [[0, 16383]])
        self.assertTrue(other.error("GET", "key:1").startswith("MOVED "))
        self.assertEqual(self.first.call("GET", "key:1"), b"1")
        self.assertEqual(parse_info(other.call("INFO", "sharding"))["shard_mode"], "sharded")

    def test_after_a_rebalance_slots_and_keys_are_split_between_the_groups(self) -> None:
        self.rebalance()
        for node in self.cluster.nodes:
            slots = node.call("CLUSTER", "SLOTS")
            covered = sorted((lo, hi) for lo, hi, *_ in slots)
            self.assertEqual(covered, [(0, 8191), (8192, 16383)])
            self.assertEqual(parse_info(node.call("CLUSTER", "INFO"))["cluster_size"], "2")
        counts = [self.cluster.leader(g).call("DBSIZE") for g in (1, 2)]
        self.assertEqual(sum(counts), 50)
        self.assertTrue(all(counts), counts)
        for i in range(50):
            key = f"key:{i}"
            owner = self.cluster.groups[self.owner(key)][1]
            self.assertEqual(owner.call("GET", key), str(i).encode())

    def test_a_node_of_the_wrong_group_redirects(self) -> None:
        self.rebalance()
        key = "key:7"
        slot = key_hash_slot(key.encode())
        owner = self.owner(key)
        other = self.cluster.groups[3 - owner][0]
        error = other.error("GET", key)
        self.assertTrue(error.startswith(f"MOVED {slot} "), error)
        address = error.split()[2]
        self.assertIn(address, [n.resp_address for n in self.cluster.groups[owner]])
        self.assertTrue(other.error("ERAFT.SCAN", slot).startswith("MOVED"))
        self.assertTrue(other.error("MSET", "a", 1, "b", 2).startswith("CROSSSLOT"))
        # Following the redirection works.
        target = next(n for n in self.cluster.groups[owner] if n.resp_address == address)
        self.assertEqual(target.call("GET", key), b"7")

    def test_moving_a_range_back_and_forth_under_writes(self) -> None:
        """Writes that follow -MOVED and retry -TRYAGAIN while slots 0-999
        move to the other group and back: none is lost, none is resurrected."""
        self.rebalance()
        by_address = {n.resp_address: n for n in self.cluster.nodes}
        keys = [k for k in (f"m:{i}" for i in range(2000)) if key_hash_slot(k.encode()) <= 999]
        home = self.owner(keys[0])
        written: dict[str, bytes] = {}
        redirected: set[str] = set()

        def write(key: str, value: bytes) -> None:
            node = self.cluster.groups[home][0]
            for _ in range(200):
                try:
                    self.assertEqual(node.call("SET", key, value), "OK")
                    written[key] = value
                    return
                except ReplyError as e:
                    code, *rest = str(e).split()
                    redirected.add(code)
                    if code == "MOVED":
                        node = by_address[rest[1]]
                    elif code == "TRYAGAIN":
                        self.cluster.advance(0.05)
                    else:
                        raise
            self.fail(f"{key} not written")

        for round_, target in enumerate((3 - home, home)):
            self.cluster.meta_op("move", 0, 999, target)
            for i, key in enumerate(keys[:30]):
                write(key, f"{round_}:{i}".encode())
            self.cluster.settle()
            self.assertEqual(self.owner(keys[0]), target)
            owner = self.cluster.leader(target)
            for key, value in written.items():
                self.assertEqual(owner.call("GET", key), value)
            # Every member of the old owner dropped its copy of the range.
            for node in self.cluster.groups[3 - target]:
                store = node.server.store
                self.assertEqual([k for k in written if store.get(k.encode(), 0) is not None], [])
        self.assertIn("MOVED", redirected)
