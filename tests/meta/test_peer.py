"""MetaQuery / MetaJoin on the meta node's peer port (AMP over iosim)."""

from __future__ import annotations

from typing import Any

import msgpack
from twisted.internet import defer
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial import unittest

from eraft_twisted.meta.api import MetaAPI
from eraft_twisted.meta.peer import MetaPeerLocator
from eraft_twisted.node.errors import RaftTimeout
from eraft_twisted.rpc.commands import MetaError, MetaJoin, MetaQuery, ProposalFailed
from tests.meta.test_http import FakeNode


class MetaPeerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.node = FakeNode()
        api = MetaAPI(self.node, self.node.app)

        def server() -> amp.AMP:
            return amp.AMP(locator=MetaPeerLocator(self.node, "meta", api))  # type: ignore[arg-type]

        self.client, _, self.pump = iosim.connectedServerAndClient(server, amp.AMP)

    def call(self, command: type[amp.Command], **kw: Any) -> defer.Deferred[Any]:
        # AMP drops the link if an error answer finds no errback: attach
        # one before the answer arrives.
        results: list[Any] = []
        self.client.callRemote(command, **kw).addBoth(results.append)
        self.pump.flush()
        if isinstance(results[0], Failure):
            return defer.fail(results[0])
        return defer.succeed(results[0])

    def test_join_and_query(self) -> None:
        r = self.successResultOf(self.call(MetaJoin, group=3, servers=["127.0.0.1:6379"]))
        self.assertEqual(r, {"num": 1})
        r = self.successResultOf(self.call(MetaQuery, num=-1))
        cfg = msgpack.unpackb(r["config"], strict_map_key=False)
        self.assertEqual(cfg["num"], 1)
        self.assertEqual(cfg["groups"], {"3": ["127.0.0.1:6379"]})
        self.assertEqual(cfg["ranges"], [[0, 16383, 3]])
        self.assertEqual(cfg["migrations"], [])
        # Registering again with the same servers changes nothing.
        r = self.successResultOf(self.call(MetaJoin, group=3, servers=["127.0.0.1:6379"]))
        self.assertEqual(r, {"num": 1})

    def test_missing_config_is_empty(self) -> None:
        r = self.successResultOf(self.call(MetaQuery, num=5))
        self.assertEqual(r, {"config": b""})
        self.assertEqual(self.successResultOf(self.call(MetaQuery, num=-7)), {"config": b""})

    def test_errors(self) -> None:
        f = self.failureResultOf(self.call(MetaJoin, group=0, servers=["x:1"]), MetaError)
        self.assertIn("group must be an integer", str(f.value))
        self.successResultOf(self.call(MetaJoin, group=1, servers=["x:1"]))
        f = self.failureResultOf(self.call(MetaJoin, group=2, servers=["x:1"]), MetaError)
        self.assertIn("already belongs to group 1", str(f.value))
        self.node.failure = RaftTimeout("read not confirmed within 5s")
        f = self.failureResultOf(self.call(MetaQuery, num=-1), ProposalFailed)
        self.assertIn("read not confirmed", str(f.value))
