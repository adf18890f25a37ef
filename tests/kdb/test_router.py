"""The router's choice of server when members of a group are down."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.internet.error import ConnectionRefusedError
from twisted.trial import unittest

from eraft_twisted.kdb.router import Router
from eraft_twisted.resp.client import ConnectionGone, NotSent, ReplyError
from eraft_twisted.resp.commands import CommandError

SERVERS = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
CONFIG = {"num": 1, "groups": {"1": SERVERS}, "ranges": [[0, 16383, 1]]}


class FakeMeta:
    def query(self, num: int) -> defer.Deferred[Any]:
        return defer.succeed(CONFIG)

    def close(self) -> None:
        pass


class FakePool:
    """Like RespClientPool: servers in ``down`` refuse connections (NotSent),
    those in ``drop`` take the command and lose the connection, those in
    ``replies`` answer that error; the rest answer their address."""

    def __init__(self, down: set[str]) -> None:
        self.down = down
        self.drop: set[str] = set()
        self.replies: dict[str, str] = {}
        self.calls: list[str] = []

    def call(self, address: str, *args: Any) -> defer.Deferred[Any]:
        self.calls.append(address)
        if address in self.down:
            return defer.fail(NotSent(str(ConnectionRefusedError(address))))
        if address in self.drop:
            return defer.fail(ConnectionGone("connection lost"))
        if address in self.replies:
            return defer.fail(ReplyError(self.replies[address]))
        return defer.succeed(address.encode())


class RouterFailoverTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.router = Router(self.clock, FakeMeta())
        self.pool = FakePool({SERVERS[0]})
        self.router.pool = self.pool  # type: ignore[assignment]

    def test_concurrent_fan_out_all_land_on_live_servers(self) -> None:
        calls = [self.router.call_slot(slot, [b"GET", b"k"]) for slot in range(50)]
        replies = [self.successResultOf(d) for d in calls]
        # All answered by the next server (the first is down).
        self.assertEqual(replies, [SERVERS[1].encode()] * 50)
        # Fifty failures at once move the preference one step, not fifty.
        self.assertEqual(self.router._server(1), SERVERS[1])
        self.assertEqual(self.pool.calls.count(SERVERS[0]), 1)

    def test_the_next_live_server_is_found_past_two_dead_ones(self) -> None:
        self.pool.down = {SERVERS[0], SERVERS[1]}
        self.assertEqual(
            self.successResultOf(self.router.call_slot(7, [b"GET", b"k"])), SERVERS[2].encode()
        )

    def test_a_group_that_stays_down_is_clusterdown_after_backing_off(self) -> None:
        self.pool.down = set(SERVERS)
        d = self.router.call_slot(7, [b"GET", b"k"])
        self.assertNoResult(d)  # waiting before the next round
        self.clock.pump([0.1] * 10)
        f = self.failureResultOf(d, CommandError)
        self.assertEqual(f.value.code, "CLUSTERDOWN")
        self.assertEqual(len(self.pool.calls), 9)

    def test_a_group_back_within_the_backoff_is_served(self) -> None:
        self.pool.down = set(SERVERS)
        d = self.router.call_slot(7, [b"GET", b"k"])
        self.pool.down = {SERVERS[0]}
        self.clock.advance(0.1)
        self.assertEqual(self.successResultOf(d), SERVERS[1].encode())


class RouterRetryTests(unittest.TestCase):
    """A command is sent again only when that cannot apply it twice."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.router = Router(self.clock, FakeMeta())
        self.pool = FakePool(set())
        self.router.pool = self.pool  # type: ignore[assignment]

    def test_a_write_that_was_never_sent_goes_to_the_next_server(self) -> None:
        self.pool.down = {SERVERS[0]}
        d = self.router.call_slot(7, [b"SET", b"k", b"v"])
        self.assertEqual(self.successResultOf(d), SERVERS[1].encode())

    def test_a_write_whose_connection_was_lost_is_not_sent_again(self) -> None:
        self.pool.drop = {SERVERS[0]}
        f = self.failureResultOf(self.router.call_slot(7, [b"INCR", b"k"]), CommandError)
        self.assertEqual(f.value.code, "TIMEOUT")
        self.assertIn("may have been applied", str(f.value))
        self.assertEqual(self.pool.calls, [SERVERS[0]])

    def test_a_write_answered_timeout_is_not_sent_again(self) -> None:
        self.pool.replies = {SERVERS[0]: "TIMEOUT not confirmed in time"}
        f = self.failureResultOf(self.router.call_slot(7, [b"SET", b"k", b"v"]), CommandError)
        self.assertEqual(f.value.code, "TIMEOUT")
        self.assertEqual(self.pool.calls, [SERVERS[0]])

    def test_a_read_is_sent_again_after_a_lost_connection_or_timeout(self) -> None:
        self.pool.drop = {SERVERS[0]}
        d = self.router.call_slot(7, [b"GET", b"k"])
        self.assertEqual(self.successResultOf(d), SERVERS[1].encode())
        self.pool.replies = {SERVERS[1]: "TIMEOUT not confirmed in time"}
        d = self.router.call_slot(7, [b"GET", b"k"])
        self.clock.pump([0.05] * 40)
        self.pool.replies = {}
        self.clock.pump([0.05] * 40)
        self.assertEqual(self.successResultOf(d), SERVERS[1].encode())


class FailingMeta:
    """A meta group that cannot be reached."""

    def query(self, num: int) -> defer.Deferred[Any]:
        return defer.fail(ConnectionError("no meta server answered: Connection was refused"))

    def close(self) -> None:
        pass


class MetaDownTests(unittest.TestCase):
    def test_no_config_and_no_meta_group_is_clusterdown(self) -> None:
        router = Router(task.Clock(), FailingMeta())
        router.pool = FakePool(set())  # type: ignore[assignment]
        for argv in ([b"GET", b"k"], [b"SET", b"k", b"v"]):
            f = self.failureResultOf(router.call_slot(7, argv), CommandError)
            self.assertEqual(f.value.code, "CLUSTERDOWN")
            self.assertIn("meta group unreachable", str(f.value))
        self.assertEqual(router.pool.calls, [])  # type: ignore[attr-defined]

    def test_a_known_config_is_kept_while_the_meta_group_is_down(self) -> None:
        clock = task.Clock()
        router = Router(clock, FakeMeta())
        pool = FakePool(set())
        router.pool = pool  # type: ignore[assignment]
        self.successResultOf(router.call_slot(7, [b"GET", b"k"]))
        router.meta = FailingMeta()
        pool.replies = {SERVERS[0]: "CLUSTERDOWN no leader yet"}
        d = router.call_slot(7, [b"GET", b"k"])
        pool.replies = {}
        clock.pump([0.05] * 5)
        self.assertEqual(self.successResultOf(d), SERVERS[0].encode())
        # -MOVED with the meta group down: followed, and no unhandled error.
        pool.replies = {SERVERS[0]: f"MOVED 7 {SERVERS[1]}"}
        self.assertEqual(
            self.successResultOf(router.call_slot(7, [b"GET", b"k"])), SERVERS[1].encode()
        )
