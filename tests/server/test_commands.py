"""KV commands through every node of an in-process three-node group."""

from __future__ import annotations

import os

from eraft_twisted.testing.cluster import ReplyError

from .base import ClusterCase


class CommandTests(ClusterCase):
    def test_every_command_through_every_node(self) -> None:
        for node in self.nodes():
            key = f"py:{node.node_id}"
            self.assertEqual(node.call("SET", key, "v1"), "OK")
            self.assertEqual(node.call("GET", key), b"v1")
            self.assertEqual(node.call("INCR", f"ctr:{node.node_id}"), 1)
            self.assertEqual(node.call("EXPIRE", key, 100), 1)
            self.assertTrue(0 < node.call("TTL", key) <= 100)
            self.assertEqual(node.call("DEL", key, "nope"), 1)
            self.assertIsNone(node.call("GET", key))
        # Every node sees every write (linearizable reads on followers too).
        for node in self.nodes():
            self.assertEqual(node.call("MGET", "ctr:0", "ctr:1", "ctr:2"), [b"1", b"1", b"1"])

    def test_a_write_on_a_follower_is_forwarded_to_the_leader(self) -> None:
        leader, follower = self.leader(), self.follower()
        proposals = leader.node.stats["proposals"]
        self.assertEqual(follower.call("SET", "fwd", "1"), "OK")
        self.assertGreater(leader.node.stats["proposals"], proposals)
        self.assertEqual(follower.node.stats["proposals"], 0)
        self.assertEqual(leader.call("GET", "fwd"), b"1")

    def test_keys_expire_on_time_as_in_redis(self) -> None:
        """A 100 ms key is gone everywhere soon after; PTTL counts down from
        the leader's time of the SET, by the log's time (simulated clock:
        the bounds are exact, not padded for a loaded machine)."""
        node = self.nodes()[1]
        self.assertEqual(node.call("SET", "short", "v", "PX", 100), "OK")
        set_at = self.cluster.clock.seconds()
        self.assertEqual(node.call("SET", "ten", "v", "EX", 10), "OK")
        self.cluster.advance(0.4)
        for n in self.nodes():
            self.assertIsNone(n.call("GET", "short"))
        self.cluster.advance(0.8)
        for n in self.nodes():
            elapsed_ms = (self.cluster.clock.seconds() - set_at) * 1000
            pttl = n.call("PTTL", "ten")
            # The log's time trails the clock by at most a sweep interval
            # and one entry's round.
            self.assertTrue(
                10_000 - elapsed_ms <= pttl <= 10_000 - elapsed_ms + 200,
                f"PTTL {pttl} on node {n.node_id} after {elapsed_ms:.0f} ms",
            )
        self.assertIn("expires=1", node.info("keyspace")["db0"])

    def test_flushall(self) -> None:
        node = self.nodes()[0]
        node.call("MSET", *[x for i in range(100) for x in (f"flush:{i}", i)])
        self.assertEqual(node.call("FLUSHALL"), "OK")
        for n in self.nodes():
            self.assertEqual(n.call("DBSIZE"), 0)
            self.assertIsNone(n.call("GET", "flush:7"))
        self.assertEqual(node.call("SET", "flush:after", 1), "OK")
        self.assertEqual(self.nodes()[2].call("KEYS", "flush:*"), [b"flush:after"])

    def test_reads_on_every_node_right_after_flushall(self) -> None:
        """Reads pipelined right behind an acknowledged FLUSHALL, on every
        node, never count or list a flushed key."""
        writer = self.nodes()[0]
        clients = [n.client(fresh=True) for n in self.nodes() for _ in range(2)]
        for round_ in range(3):
            writer.call("MSET", *[x for i in range(500) for x in (f"h:{round_}:{i}", "x" * 64)])
            self.assertEqual(writer.call("FLUSHALL"), "OK")
            pending = [(c.call("DBSIZE"), c.call("KEYS", "h:*")) for c in clients for _ in range(3)]
            seen = [(self.cluster.wait(a), self.cluster.wait(b)) for a, b in pending]
            self.assertEqual([s for s in seen if s != (0, [])], [], f"round {round_}")

    def test_scan_and_keys(self) -> None:
        node = self.nodes()[1]
        names = {f"scan:{i}".encode() for i in range(150)}
        node.call("MSET", *[x for n in sorted(names) for x in (n, b"x")])
        found: set[bytes] = set()
        cursor = b"0"
        while True:
            cursor, keys = node.call("SCAN", cursor, "MATCH", "scan:*", "COUNT", 20)
            found.update(keys)
            if cursor == b"0":
                break
        self.assertEqual(found, names)
        self.assertEqual(set(node.call("KEYS", "scan:*")), names)
        self.assertGreaterEqual(node.call("DBSIZE"), 150)

    def test_wrong_type_arity_and_integer_errors(self) -> None:
        node = self.nodes()[0]
        node.call("SET", "notnum", "abc")
        self.assertIn("not an integer or out of range", node.error("INCR", "notnum"))
        self.assertIn("wrong number of arguments for 'get'", node.error("GET"))
        self.assertEqual(node.call("TYPE", "notnum"), "string")
        self.assertTrue(node.error("NOSUCHCOMMAND").startswith("ERR unknown command"))

    def test_config_get_reports_the_nodes_settings_and_set_is_refused(self) -> None:
        node = self.nodes()[1]
        self.assertEqual(
            node.call("CONFIG", "GET", "append*"),
            [b"appendonly", b"yes", b"appendfsync", b"always"],
        )
        got = node.call("CONFIG", "GET", "port", "dir", "cluster-enabled", "no-such-*")
        port = node.resp_address.rpartition(":")[2] if node.resp_address else ""
        self.assertEqual(
            dict(zip(got[::2], got[1::2], strict=True)),
            {
                b"port": port.encode(),
                b"dir": os.path.abspath(node.server.data_dir).encode(),
                b"cluster-enabled": b"no",
            },
        )
        self.assertIn("CONFIG SET is not supported", node.error("CONFIG", "SET", "maxmemory", "1"))
        self.assertIn("wrong number of arguments", node.error("CONFIG", "GET"))

    def test_big_value_through_a_follower_replicates(self) -> None:
        # Forwarded, then replicated, in AMP commands whose values are split
        # at AMP's 64 KiB limit.
        value = os.urandom(4 * 1024 * 1024 + 17)
        self.assertEqual(self.follower().call("SET", "big", value), "OK")
        for node in self.nodes():
            self.assertEqual(node.call("GET", "big"), value)

    def test_error_replies_raise(self) -> None:
        with self.assertRaises(ReplyError):
            self.nodes()[0].call("GET")
