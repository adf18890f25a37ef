"""The node and the KV application together: the leader's clock on every
entry, and fail-stop when applying an entry raises."""

from __future__ import annotations

from eraft_twisted.kv.app import KVApplication
from eraft_twisted.kv.statemachine import OK, ApplyError, Op, encode_op, relative, unpack_record
from eraft_twisted.node.driver import RaftNode

from .test_driver import KVGroupCase


class LogTimeTests(KVGroupCase):
    def setUp(self) -> None:
        self.apps: dict[int, KVApplication] = {}
        self.stopped: dict[int, str] = {}
        super().setUp()

    def configure(self, node: RaftNode) -> None:
        nid = node.node_id
        node.fail_stop_hook = lambda reason: self.stopped.__setitem__(nid, reason)
        self.apps[nid] = node.app  # type: ignore[assignment]

    def test_a_ttl_counts_from_the_leaders_clock(self) -> None:
        """Sent through a follower whose clock is 100 s behind: the deadline
        is fixed by the leader when it appends, the same on every replica."""
        leader = self.leader()
        follower = next(n for n in self.net.nodes.values() if n is not leader)
        leader.wall_clock = lambda: 500.0
        follower.wall_clock = lambda: 400.0
        d = follower.propose(encode_op(Op.SET, 400_000, b"k", b"v", relative(10_000), 0, False))
        self.run_for(0.5)
        self.assertEqual(self.successResultOf(d), OK)
        for app in self.apps.values():
            self.assertEqual(app.sm.log_time, 500_000)
            self.assertEqual(unpack_record(app.store.get_record(b"k"))[1], 510_000)
        # A later leader with a slower clock never moves the log's time back.
        leader.wall_clock = lambda: 450.0
        d = follower.propose(encode_op(Op.TICK, 0))
        self.run_for(0.5)
        self.successResultOf(d)
        self.assertEqual({app.sm.log_time for app in self.apps.values()}, {500_000})

    def test_an_exception_while_applying_stops_that_node(self) -> None:
        """A replica whose apply raises stops at once, with the entry named;
        it does not skip the entry and go on (diverging from the others)."""
        leader = self.leader()
        victim = next(n for n in self.net.nodes.values() if n is not leader)
        store = self.apps[victim.node_id].store
        real = store.get_record

        def broken(key: bytes) -> bytes | None:
            if key == b"boom":
                raise OSError("simulated bug")
            return real(key)

        store.get_record = broken  # type: ignore[method-assign]
        d = leader.propose(encode_op(Op.INCRBY, 0, b"boom", 1))
        self.run_for(0.5)
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(list(self.stopped), [victim.node_id])
        reason = self.stopped[victim.node_id]
        self.assertIn("applying INCRBY failed", reason)
        self.assertIn("simulated bug", reason)
        self.assertRegex(reason, r"entry \d+ \(term \d+")
        # Nothing of that entry, or after it, was applied there.
        self.assertIsNone(real(b"boom"))
        self.assertTrue(victim.failed)
        # The traceback is logged too (it is a bug to report).
        self.assertEqual(len(self.flushLoggedErrors(ApplyError)), 1)
