"""Collections as replicated state, in-process: every replica holds the
same rows; DEL is O(1) and the dead rows go through the log; FLUSHALL,
expiry, snapshots, restarts and slot moves carry collections whole."""

from __future__ import annotations

from eraft_twisted.hashslot import key_hash_slot
from eraft_twisted.kv.records import unpack_meta
from eraft_twisted.resp.encoder import NULL_ARRAY
from eraft_twisted.storage import layout
from eraft_twisted.testing.cluster import ClusterNode

from .base import ClusterCase


def rows_of(node: ClusterNode, area: bytes = layout.ROWS_PREFIX) -> list[bytes]:
    """Every DB key of ``area`` on ``node``, written or still queued."""
    store = node.server.store
    return [k for k, _ in store.iterate_rows(area, layout.prefix_stop(area))]


def hash_fields(n: int) -> list[str]:
    return [x for i in range(n) for x in (f"f{i}", str(i))]


class CollectionTests(ClusterCase):
    def test_every_replica_applies_the_same_rows(self) -> None:
        leader = self.leader()
        self.assertEqual(leader.call("HSET", "h", *hash_fields(20)), 20)
        self.assertEqual(self.follower().call("HGET", "h", "f7"), b"7")
        self.cluster.advance(1)
        expected = rows_of(leader)
        self.assertEqual(len(expected), 20)
        for node in self.nodes():
            self.assertEqual(rows_of(node), expected)

    def test_del_drops_the_record_and_the_rows_follow_through_the_log(self) -> None:
        leader = self.leader()
        leader.call("HSET", "big", *hash_fields(2500))
        record = leader.server.store.get_record(b"big")
        self.assertIsNotNone(record)
        version = unpack_meta(record).version  # type: ignore[arg-type]
        self.assertEqual(leader.call("DEL", "big"), 1)
        # At once: the key is gone, its rows are garbage with a marker.
        self.assertEqual(leader.call("EXISTS", "big"), 0)
        self.assertEqual(leader.call("HLEN", "big"), 0)
        slot = key_hash_slot(b"big")
        self.assertIn(layout.garbage_key(slot, version), rows_of(leader, layout.GARBAGE_PREFIX))
        # A new hash at the same key starts empty (a new version).
        self.assertEqual(leader.call("HSET", "big", "x", "1"), 1)
        self.assertEqual(leader.call("HGETALL", "big"), [b"x", b"1"])
        # The leader removes the dead rows in batches, through the log.
        self.cluster.run_until(lambda: len(rows_of(leader)) == 1)
        for node in self.nodes():
            self.cluster.run_until(lambda node=node: len(rows_of(node)) == 1)  # type: ignore[misc]
            self.assertEqual(rows_of(node, layout.GARBAGE_PREFIX), [])

    def test_set_over_a_hash_and_expiry_bury_its_rows(self) -> None:
        leader = self.leader()
        leader.call("HSET", "a", *hash_fields(5))
        leader.call("HSET", "b", *hash_fields(5))
        self.assertEqual(leader.call("SET", "a", "now a string"), "OK")
        self.assertEqual(leader.call("TYPE", "a"), "string")
        self.assertEqual(leader.call("PEXPIRE", "b", 100), 1)
        self.assertGreater(leader.call("PTTL", "b"), 0)
        self.cluster.run_until(lambda: leader.call("EXISTS", "b") == 0)
        self.cluster.run_until(lambda: rows_of(leader) == [])
        for node in self.nodes():
            self.cluster.run_until(lambda node=node: rows_of(node) == [])  # type: ignore[misc]
            self.assertEqual(node.call("TYPE", "b"), "none")

    def test_flushall_clears_rows_too(self) -> None:
        leader = self.leader()
        leader.call("HSET", "h", *hash_fields(10))
        leader.call("HSET", "g", *hash_fields(10))
        leader.call("DEL", "g")
        self.assertEqual(leader.call("FLUSHALL"), "OK")
        self.assertEqual(leader.call("HGETALL", "h"), [])
        self.assertEqual(leader.call("DBSIZE"), 0)
        self.cluster.advance(1)
        for node in self.nodes():
            self.assertEqual(rows_of(node), [])
            self.assertEqual(rows_of(node, layout.GARBAGE_PREFIX), [])

    def test_a_restart_and_a_snapshot_keep_every_row(self) -> None:
        leader = self.leader()
        leader.call("HSET", "h", *hash_fields(50))
        follower = self.follower()
        follower.kill()
        leader.call("HSET", "h", "late", "yes")
        self.assertEqual(leader.call("RAFT.SNAPSHOT"), leader.call("RAFT.SNAPSHOT"))
        follower.restart()
        self.cluster.run_until(lambda: follower.call("HLEN", "h") == 51)
        self.assertEqual(follower.call("HGET", "h", "late"), b"yes")
        new = self.cluster.join_node()
        self.cluster.run_until(lambda: new.running and new.call("HLEN", "h") == 51)
        self.assertEqual(rows_of(new), rows_of(leader))


class CollectionMigrationTests(ClusterCase):
    n = 3
    groups = 2

    def test_a_hash_moves_row_by_row_and_keeps_every_field_written_during_the_move(
        self,
    ) -> None:
        first = self.cluster.groups[1][0]
        key = "{m}hash"
        slot = key_hash_slot(key.encode())
        self.assertEqual(first.call("HSET", key, *hash_fields(2500)), 2500)
        first.call("HSET", "{m}dead", *hash_fields(5))
        first.call("DEL", "{m}dead")
        self.cluster.meta_op("move", slot, slot, 2)
        by_address = {n.resp_address: n for n in self.cluster.nodes}
        written = 0
        node = first
        while written < 20:
            try:
                node.call("HSET", key, f"during{written}", "1")
                written += 1
            except Exception as e:  # -MOVED / -TRYAGAIN while it moves
                code, *rest = str(e).split()
                if code == "MOVED":
                    node = by_address[rest[1]]
                elif code == "TRYAGAIN":
                    self.cluster.advance(0.05)
                else:
                    raise
        self.cluster.settle()
        owner = self.cluster.leader(2)
        self.assertEqual(owner.call("HLEN", key), 2520)
        self.assertEqual(owner.call("HGET", key, "f1234"), b"1234")
        self.assertEqual(owner.call("HGET", key, "during19"), b"1")
        # The source dropped every row of the slot; the new owner's later
        # versions never collide with the moved ones.
        self.cluster.run_until(lambda: rows_of(self.cluster.leader(1)) == [])
        self.assertEqual(owner.call("HSET", "{m}new", "a", "1"), 1)
        self.assertEqual(owner.call("HGETALL", "{m}new"), [b"a", b"1"])
        self.cluster.run_until(lambda: rows_of(owner, layout.GARBAGE_PREFIX) == [])
        self.assertEqual(len(rows_of(owner)), 2521)


class TransactionClusterTests(ClusterCase):
    def test_exec_from_a_follower_is_one_entry_applied_everywhere(self) -> None:
        follower = self.follower()
        client = follower.client(fresh=True)
        for argv in (("MULTI",), ("SET", "a", "1"), ("INCR", "a"), ("HSET", "h", "f", "v")):
            self.cluster.wait(client.call(*argv))
        entries_before = int(self.leader().raft_info()["raft_commit_index"])
        self.assertEqual(self.cluster.wait(client.call("EXEC")), ["OK", 2, 1])
        self.assertEqual(int(self.leader().raft_info()["raft_commit_index"]), entries_before + 1)
        for node in self.nodes():
            self.assertEqual(node.call("GET", "a"), b"2")
            self.assertEqual(node.call("HGET", "h", "f"), b"v")

    def test_watch_on_a_follower_sees_a_write_made_on_the_leader(self) -> None:
        leader, follower = self.leader(), self.follower()
        leader.call("SET", "balance", "10")
        client = follower.client(fresh=True)
        self.assertEqual(self.cluster.wait(client.call("WATCH", "balance")), "OK")
        leader.call("DECRBY", "balance", "3")
        for argv in (("MULTI",), ("SET", "balance", "0")):
            self.cluster.wait(client.call(*argv))
        self.assertIs(self.cluster.wait(client.call("EXEC")), NULL_ARRAY)
        self.assertEqual(leader.call("GET", "balance"), b"7")
