"""The in-process cluster itself: repeatable runs, and the simulated network's
partitions and crashes as the production peer links see them."""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.testing.cluster import make_cluster
from eraft_twisted.testing.memnet import Network


class Recorder(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: object = None) -> None:
        self.lost = True


class NetworkTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.net = Network(self.clock)
        self.servers: list[Recorder] = []
        self.net.listen("b", "127.0.0.1:1", Factory.forProtocol(self.server))
        self.client = Recorder()
        factory = ClientFactory.forProtocol(lambda: self.client)
        self.a = self.net.reactor("a")
        self.a.connectTCP("127.0.0.1", 1, factory)
        self.clock.advance(0.01)

    def server(self) -> Recorder:
        proto = Recorder()
        self.servers.append(proto)
        return proto

    def test_bytes_take_one_hop(self) -> None:
        (server,) = self.servers
        assert self.client.transport is not None
        self.client.transport.write(b"hello")
        self.assertEqual(server.data, b"")
        self.clock.advance(0.001)
        self.assertEqual(server.data, b"hello")

    def test_a_cut_holds_bytes_until_healed_and_refuses_new_connections(self) -> None:
        (server,) = self.servers
        self.net.cut("a", "b")
        assert self.client.transport is not None
        self.client.transport.write(b"held")
        self.clock.advance(5)
        self.assertEqual(server.data, b"")
        refused: list[object] = []

        class Refused(ClientFactory):
            def clientConnectionFailed(self, connector: object, reason: object) -> None:
                refused.append(reason)

        self.a.connectTCP("127.0.0.1", 1, Refused.forProtocol(Recorder))
        self.clock.advance(0.01)
        self.assertEqual(len(refused), 1)
        self.net.heal()
        self.clock.advance(0.01)
        self.assertEqual(server.data, b"held")

    def test_closing_is_local_at_once_and_reaches_the_other_side_after_a_cut(self) -> None:
        (server,) = self.servers
        self.net.cut("a", "b")
        assert self.client.transport is not None
        self.client.transport.loseConnection()
        self.clock.advance(0.01)
        self.assertTrue(self.client.lost)
        self.assertFalse(server.lost)
        self.net.heal()
        self.clock.advance(0.01)
        self.assertTrue(server.lost)

    def test_a_killed_host_drops_its_connections_and_stops_listening(self) -> None:
        (server,) = self.servers
        self.net.kill("b")
        self.assertTrue(server.lost)
        self.assertTrue(self.client.lost)
        self.assertEqual(self.net.listeners, {})


class ClusterTests(SynchronousTestCase):
    def run_once(self, seed: int) -> tuple[object, ...]:
        cluster = make_cluster(task.Clock(), 3, seed=seed)
        try:
            leader = cluster.leader()
            for i in range(20):
                cluster.nodes[i % 3].call("INCR", "n")
            cluster.advance(1)
            raw = leader.node.raw
            assert raw is not None
            return (leader.node_id, raw.term, raw.raft.log.last_index(), cluster.clock.seconds())
        finally:
            cluster.stop()

    def test_the_same_seed_gives_the_same_run(self) -> None:
        self.assertEqual(self.run_once(7), self.run_once(7))

    def test_a_stopped_cluster_leaves_nothing_scheduled(self) -> None:
        cluster = make_cluster(task.Clock(), 3)
        cluster.call(0, "SET", "a", "b")
        cluster.stop()
        self.assertEqual([c for c in cluster.clock.getDelayedCalls() if c.active()], [])
