"""PeerTransport over real loopback sockets: forwarded requests and links
that are still (re)connecting."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from eraft_twisted.rpc import transport as transport_module
from eraft_twisted.rpc.commands import LeaderUnreachable, TransferLeader
from eraft_twisted.rpc.transport import PeerServerFactory, PeerTransport
from eraft_twisted.testing.procs import free_ports


class Handler:
    """Answers forwarded requests like a leader would."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.proposed: list[bytes] = []

    def receive_messages(self, msgs: list[Any]) -> None:
        pass

    def propose_forwarded(self, data: bytes) -> defer.Deferred[bytes]:
        self.proposed.append(data)
        return defer.succeed(b"result:" + data)

    def transfer_leadership(self, target: int) -> defer.Deferred[int]:
        return defer.succeed(target)


class TransportTests(unittest.TestCase):
    def setUp(self) -> None:
        (self.port,) = free_ports(1)
        self.transport = PeerTransport(
            reactor, Handler(0), "g", {1: f"127.0.0.1:{self.port}"}, lambda nid: None
        )
        self.transport.startService()
        self.addCleanup(self.transport.stopService)

    def listen(self) -> Handler:
        handler = Handler(1)
        listening = reactor.listenTCP(  # type: ignore[attr-defined]
            self.port, PeerServerFactory(handler, "g"), interface="127.0.0.1"
        )
        self.addCleanup(listening.stopListening)
        return handler

    @defer.inlineCallbacks
    def test_a_forward_waits_for_a_link_that_is_still_connecting(self) -> Any:
        # The peer comes up after the request was made (as right after start-up).
        d = self.transport.forward_propose(1, b"x")
        call = self.transport.call(1, TransferLeader, target=7)
        reactor.callLater(0.3, self.listen)  # type: ignore[attr-defined]
        self.assertEqual((yield d), b"result:x")
        self.assertEqual((yield call), {"leader": 7})

    @defer.inlineCallbacks
    def test_a_peer_that_stays_down_is_unreachable_after_the_wait(self) -> Any:
        self.patch(transport_module, "LINK_WAIT", 0.3)
        with self.assertRaises(LeaderUnreachable):
            yield self.transport.forward_propose(1, b"x")
        with self.assertRaisesRegex(ConnectionError, "peer 1 is unreachable"):
            yield self.transport.call(1, TransferLeader, target=7)
        with self.assertRaisesRegex(ConnectionError, "peer 5 is unknown"):
            yield self.transport.call(5, TransferLeader, target=7)
