"""Cluster ids on meta links: the meta peer port refuses clients of another
cluster (iosim), and AMPMetaClient refuses meta groups of another cluster
(loopback sockets). ``GET /status`` shows the cluster id."""

from __future__ import annotations

import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer, reactor
from twisted.protocols import amp
from twisted.test import iosim
from twisted.trial import unittest

from eraft_twisted.meta.api import MetaAPI
from eraft_twisted.meta.app import encode_op
from eraft_twisted.meta.http import AdminAPI
from eraft_twisted.meta.peer import MetaPeerLocator, MetaPeerServerFactory
from eraft_twisted.rpc.commands import Identify, MetaJoin, MetaQuery, WrongGroup
from eraft_twisted.rpc.identity import CLIENT, KV, META, ROUTER, Identity
from eraft_twisted.rpc.metaclient import AMPMetaClient, WrongCluster
from eraft_twisted.rpc.transport import PeerServerFactory
from eraft_twisted.testing.procs import free_ports
from tests.meta.test_http import FakeNode
from tests.rpc.test_identity import capture_errors


def meta_identity(cluster: str) -> Identity:
    return Identity(META, 0, cluster, cluster)


class MetaLocatorTests(unittest.TestCase):
    def setUp(self) -> None:
        self.node = FakeNode()
        self.errors = capture_errors(self)
        locator = MetaPeerLocator(
            self.node,  # type: ignore[arg-type]
            meta_identity("c1"),
            MetaAPI(self.node, self.node.app),  # type: ignore[arg-type]
            peer="127.0.0.1:4444",
        )
        self.client, _, self.pump = iosim.connectedServerAndClient(
            lambda: amp.AMP(locator=locator), amp.AMP
        )

    def call(self, command: type[amp.Command], **kw: Any) -> Any:
        results: list[Any] = []
        self.client.callRemote(command, **kw).addBoth(results.append)
        self.pump.flush()
        return results[0]

    def identify(self, cluster: str, kind: str = KV) -> Any:
        group = f"{cluster}/1" if cluster and kind == KV else ""
        return self.call(Identify, purpose=CLIENT, kind=kind, node=0, group=group, cluster=cluster)

    def test_a_kv_node_of_another_cluster_gets_no_config_and_registers_nothing(self) -> None:
        self.identify("c2").trap(WrongGroup)
        self.call(MetaQuery, num=-1).trap(WrongGroup)
        self.call(MetaJoin, group=1, servers=["127.0.0.1:6379"]).trap(WrongGroup)
        self.assertEqual(self.node.proposals, [])
        self.assertEqual(len(self.errors), 1)
        self.assertIn("refused a client link from 127.0.0.1:4444", self.errors[0])
        self.assertIn("meta node 0 of cluster c1 refuses kv node 0 of group c2/1", self.errors[0])

    def test_a_client_of_this_cluster_or_a_new_one_is_served(self) -> None:
        self.assertEqual(self.identify("c1")["cluster"], "c1")
        self.assertEqual(self.call(MetaJoin, group=1, servers=["127.0.0.1:6379"]), {"num": 1})
        self.assertEqual(self.identify("", kind=ROUTER)["cluster"], "c1")
        self.assertEqual(self.call(MetaQuery, num=5), {"config": b""})


class MetaClientTests(unittest.TestCase):
    """AMPMetaClient against meta peer ports on loopback."""

    def setUp(self) -> None:
        self.errors = capture_errors(self)

    def serve_meta(self, cluster: str) -> tuple[str, FakeNode]:
        (port,) = free_ports(1)
        node = FakeNode()
        factory = MetaPeerServerFactory(
            node,  # type: ignore[arg-type]
            meta_identity(cluster),
            MetaAPI(node, node.app),  # type: ignore[arg-type]
        )
        listening = reactor.listenTCP(port, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(listening.stopListening)
        return f"127.0.0.1:{port}", node

    def client(self, addresses: list[str], **kw: Any) -> AMPMetaClient:
        c = AMPMetaClient(reactor, addresses, timeout=5, **kw)
        self.addCleanup(c.close)
        return c

    @defer.inlineCallbacks
    def test_a_router_adopts_the_first_cluster_and_refuses_any_other(self) -> Any:
        c1, node = self.serve_meta("c1")
        c2, _ = self.serve_meta("c2")
        yield node.propose(encode_op("join", 1, ["h:1"]))
        client = self.client([c1, c2])
        cfg = yield client.query(-1)
        self.assertEqual(cfg["groups"], {"1": ["h:1"]})
        self.assertEqual(client.identity.cluster_id, "c1")
        # Its only meta node goes away, and one of another cluster answers.
        client.addresses = [c2]
        client.close()
        for _ in range(2):
            with self.assertRaisesRegex(
                WrongCluster, "refused this router: meta node 0 of cluster c2"
            ):
                yield client.query(-1)
        self.assertEqual(len(self.errors), 2, self.errors)  # once by each side, not per query
        self.assertTrue(any("(check --meta)" in e for e in self.errors))

    @defer.inlineCallbacks
    def test_a_router_given_a_cluster_id_refuses_a_meta_group_of_another(self) -> Any:
        c2, _ = self.serve_meta("c2")
        client = self.client([c2], cluster_id="c1")
        with self.assertRaises(WrongCluster) as e:
            yield client.query(-1)
        self.assertIn("no meta server of this cluster answered", str(e.exception))
        self.assertIn("meta node 0 of cluster c2 refuses router of cluster c1", str(e.exception))

    @defer.inlineCallbacks
    def test_a_wrong_address_in_the_list_is_skipped(self) -> Any:
        c1, _ = self.serve_meta("c1")
        c2, _ = self.serve_meta("c2")
        client = self.client([c2, c1], identity=Identity(KV, 0, "c1/1", "c1", shard_group=1))
        self.assertEqual((yield client.query(-1))["num"], 0)  # from c1
        self.assertEqual(len(self.errors), 2)

    @defer.inlineCallbacks
    def test_a_new_sharded_kv_node_learns_its_group_id(self) -> Any:
        c1, _ = self.serve_meta("c1")
        me = Identity(KV, 2, shard_group=4)
        client = self.client([c1], identity=me)
        yield client.identify()
        self.assertTrue(client.verified)
        self.assertEqual((me.group_id, me.cluster_id), ("c1/4", "c1"))

    @defer.inlineCallbacks
    def test_a_kv_peer_port_given_as_meta_is_refused(self) -> Any:
        (port,) = free_ports(1)
        factory = PeerServerFactory(FakeNode(), Identity(KV, 0, "g1"))  # type: ignore[arg-type]
        listening = reactor.listenTCP(port, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(listening.stopListening)
        client = self.client([f"127.0.0.1:{port}"])
        with self.assertRaisesRegex(WrongCluster, "kv node 0 of group g1 is not a meta node"):
            yield client.query(-1)
        yield client.identify()  # never fails; logged once
        self.assertFalse(client.verified)


class StatusTests(unittest.TestCase):
    def test_status_shows_the_cluster_id(self) -> None:
        node = FakeNode()
        api = AdminAPI(node, node.app, lambda: {}, meta_identity("c1"))  # type: ignore[arg-type]
        http: Any = StubTreq(api)
        response = self.successResultOf(http.get("http://127.0.0.1:8080/status"))
        body = json.loads(self.successResultOf(http.content(response)))
        self.assertEqual(body["cluster_id"], "c1")
