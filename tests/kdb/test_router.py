"""The router's choice of server when members of a group are down."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.internet.error import ConnectionRefusedError
from twisted.trial import unittest

from eraft_twisted.kdb.router import Router
from eraft_twisted.resp.commands import CommandError

SERVERS = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
CONFIG = {"num": 1, "groups": {"1": SERVERS}, "ranges": [[0, 16383, 1]]}


class FakeMeta:
    def query(self, num: int) -> defer.Deferred[Any]:
        return defer.succeed(CONFIG)


class FakePool:
    """Refuses connections to the servers in ``down``; answers the rest."""

    def __init__(self, down: set[str]) -> None:
        self.down = down
        self.calls: list[str] = []

    def call(self, address: str, *args: Any) -> defer.Deferred[Any]:
        self.calls.append(address)
        if address in self.down:
            return defer.fail(ConnectionRefusedError(address))
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
        self.assertNotIn(SERVERS[0].encode(), replies)
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
