"""Group ids on peer links: derivation, persistence, and refusals (AMP over
iosim, and PeerTransport over loopback sockets)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial import unittest

from eraft_twisted.raft.types import ConfState, Entry, Message, MessageType
from eraft_twisted.rpc.codec import encode_messages
from eraft_twisted.rpc.commands import (
    Identify,
    LeaderUnreachable,
    NotIdentified,
    Propose,
    RaftMessages,
    WrongGroup,
)
from eraft_twisted.rpc.identity import (
    CLIENT,
    KV,
    META,
    PEER,
    Identity,
    IdentityError,
    derive_id,
    load_identity,
    refusal,
)
from eraft_twisted.rpc.transport import PeerLocator, PeerServerFactory, PeerTransport
from eraft_twisted.storage import layout
from eraft_twisted.storage.leveldb import LevelDBStorage
from eraft_twisted.storage.memorydb import MemoryDB
from eraft_twisted.testing.procs import free_ports

PEERS_A = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
PEERS_B = ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]
A = derive_id(KV, PEERS_A)
B = derive_id(KV, PEERS_B)


class Handler:
    def __init__(self, node_id: int = 0) -> None:
        self.node_id = node_id
        self.received: list[Message] = []
        self.proposed: list[bytes] = []

    def receive_messages(self, msgs: list[Message]) -> None:
        self.received.extend(msgs)

    def propose_forwarded(self, data: bytes) -> defer.Deferred[bytes]:
        self.proposed.append(data)
        return defer.succeed(b"ok:" + data)


def hello(group: str, kind: str = KV, purpose: str = PEER, cluster: str = "", node: int = 1) -> Any:
    return {"purpose": purpose, "kind": kind, "node": node, "group": group, "cluster": cluster}


def capture_errors(case: unittest.TestCase) -> list[str]:
    """Error-level log lines emitted during the test."""
    lines: list[str] = []

    def observer(event: dict[str, Any]) -> None:
        if event.get("log_level") is not None and event["log_level"].name in ("error", "critical"):
            fmt = event.get("log_format") or ""
            lines.append(fmt.format(**{k: v for k, v in event.items() if isinstance(k, str)}))

    globalLogPublisher.addObserver(observer)
    case.addCleanup(globalLogPublisher.removeObserver, observer)
    return lines


class DerivationTests(unittest.TestCase):
    def test_same_peers_same_id_and_anything_else_differs(self) -> None:
        self.assertEqual(derive_id(KV, list(PEERS_A)), A)
        self.assertNotEqual(A, B)
        self.assertNotEqual(derive_id(KV, PEERS_A[::-1]), A)  # node ids index the list
        self.assertNotEqual(derive_id(KV, PEERS_A[:2]), A)
        self.assertNotEqual(derive_id(META, PEERS_A), A)
        self.assertEqual(len(A), 16)


class RefusalTests(unittest.TestCase):
    def test_peers(self) -> None:
        me = Identity(KV, 0, A)
        self.assertIsNone(refusal(me, hello(A)))
        self.assertIsNone(refusal(me, hello("")))  # a --join node still learning
        self.assertIn("another group", refusal(me, hello(B)) or "")
        self.assertIn("no peer of a kv node", refusal(me, hello(A, kind=META)) or "")
        with self.assertRaises(NotIdentified):
            refusal(Identity(KV, 0, shard_group=1), hello(A))

    def test_sharded_groups_of_two_clusters(self) -> None:
        me = Identity(KV, 0, "c1/1", "c1", shard_group=1)
        self.assertIsNone(refusal(me, hello("c1/1", cluster="c1")))
        self.assertIn("another group", refusal(me, hello("c2/1", cluster="c2")) or "")

    def test_meta_clients(self) -> None:
        meta = Identity(META, 0, "c1", "c1")
        self.assertIsNone(refusal(meta, hello("", kind="router", purpose=CLIENT)))
        self.assertIsNone(refusal(meta, hello("c1/2", purpose=CLIENT, cluster="c1")))
        text = refusal(meta, hello("c2/2", purpose=CLIENT, cluster="c2")) or ""
        self.assertIn("meta node 0 of cluster c1 refuses kv node 1 of group c2/2", text)
        kv = Identity(KV, 0, A)
        self.assertIn("is not a meta node", refusal(kv, hello("", purpose=CLIENT)) or "")


class LocatorTests(unittest.TestCase):
    """A PeerLocator answering over iosim."""

    def setUp(self) -> None:
        self.handler = Handler()
        self.errors = capture_errors(self)
        self.locator = PeerLocator(self.handler, Identity(KV, 0, A), peer="127.0.0.1:5555")

        def server() -> amp.AMP:
            return amp.AMP(locator=self.locator)

        self.client, _, self.pump = iosim.connectedServerAndClient(server, amp.AMP)

    def call(self, command: type[amp.Command], **kw: Any) -> Any:
        results: list[Any] = []
        d = self.client.callRemote(command, **kw)
        if d is not None:  # None: a command that wants no answer
            d.addBoth(results.append)
        self.pump.flush()
        return results[0] if results else None

    def messages(self) -> bytes:
        m = Message(MessageType.APPEND, to=0, frm=1, term=3, entries=(Entry(3, 1),))
        return encode_messages([m])

    def test_a_peer_of_another_group_is_refused_and_nothing_it_sends_is_taken(self) -> None:
        r = self.call(Identify, **hello(B))
        self.assertIsInstance(r, Failure)
        r.trap(WrongGroup)
        self.assertIn("kv node 0 of group", str(r.value))
        self.assertIn("refuses kv node 1", str(r.value))
        self.call(RaftMessages, payload=self.messages())
        self.assertEqual(self.handler.received, [])
        self.assertEqual(self.locator.dropped, 1)
        r = self.call(Propose, data=b"x")
        r.trap(WrongGroup)
        self.assertEqual(self.handler.proposed, [])
        self.assertEqual(len(self.errors), 1)
        self.assertIn("refused a peer link from 127.0.0.1:5555", self.errors[0])
        self.assertFalse(self.client.transport.disconnecting)  # idle, not a reconnect loop

    def test_a_peer_of_the_same_group_is_served(self) -> None:
        self.assertEqual(self.call(Identify, **hello(A))["group"], A)
        self.call(RaftMessages, payload=self.messages())
        self.assertEqual(len(self.handler.received), 1)
        self.assertEqual(self.call(Propose, data=b"x"), {"result": b"ok:x"})

    def test_a_meta_client_link_may_not_send_raft_messages(self) -> None:
        meta_locator = PeerLocator(self.handler, Identity(META, 0, "c1", "c1"))
        client, _, pump = iosim.connectedServerAndClient(
            lambda: amp.AMP(locator=meta_locator), amp.AMP
        )
        results: list[Any] = []
        client.callRemote(Identify, **hello("", kind="router", purpose=CLIENT)).addBoth(
            results.append
        )
        client.callRemote(RaftMessages, payload=self.messages())
        pump.flush()
        self.assertEqual(results[0]["cluster"], "c1")
        self.assertEqual(self.handler.received, [])

    def test_an_older_peer_that_does_not_identify_is_served(self) -> None:
        self.call(RaftMessages, payload=self.messages())
        self.assertEqual(len(self.handler.received), 1)

    def test_a_node_that_does_not_know_its_id_asks_to_be_asked_again(self) -> None:
        self.locator.identity = Identity(KV, 0, shard_group=1)
        self.call(Identify, **hello(A)).trap(NotIdentified)
        self.call(RaftMessages, payload=self.messages())
        self.assertEqual(self.handler.received, [])


class PersistenceTests(unittest.TestCase):
    def storage(self, db: MemoryDB) -> LevelDBStorage:
        return LevelDBStorage.in_memory(ConfState((0, 1, 2)), db=db)

    def test_bootstrap_derives_and_a_restart_keeps_the_stored_id(self) -> None:
        db = MemoryDB()
        ident = load_identity(self.storage(db), KV, 0, PEERS_A)
        self.assertEqual((ident.group_id, ident.cluster_id), (A, ""))
        # Restarted with another group's --peers: still group A.
        again = load_identity(self.storage(db), KV, 0, PEERS_B)
        self.assertEqual(again.group_id, A)

    def test_a_meta_group_id_is_the_cluster_id(self) -> None:
        ident = load_identity(self.storage(MemoryDB()), META, 0, PEERS_A)
        self.assertEqual(ident.group_id, derive_id(META, PEERS_A))
        self.assertEqual(ident.cluster_id, ident.group_id)

    def test_a_data_directory_of_an_older_version_adopts_the_derived_id(self) -> None:
        db = MemoryDB()
        self.storage(db)  # created, but no id written (as before ids existed)
        self.assertIsNone(db.get(layout.IDENTITY_KEY))
        ident = load_identity(self.storage(db), KV, 1, PEERS_A)
        self.assertEqual(ident.group_id, A)
        self.assertIsNotNone(db.get(layout.IDENTITY_KEY))

    def test_a_joining_node_learns_and_persists(self) -> None:
        db = MemoryDB()
        ident = load_identity(self.storage(db), KV, 3, [*PEERS_A, "127.0.0.1:7004"], join=True)
        self.assertFalse(ident.known)
        self.assertTrue(ident.learn)
        ident.adopt(A, "", "peer 0")
        self.assertEqual(load_identity(self.storage(db), KV, 3, PEERS_A, join=True).group_id, A)

    def test_a_sharded_node_takes_its_id_from_the_cluster_id(self) -> None:
        db = MemoryDB()
        ident = load_identity(self.storage(db), KV, 0, PEERS_A, shard_group=3)
        self.assertFalse(ident.known)
        changed: list[str] = []
        ident.on_change.append(lambda i: changed.append(i.group_id))
        ident.learn_cluster("c1", "meta at x")
        ident.learn_cluster("c2", "meta at y")  # first contact only
        self.assertEqual((ident.group_id, ident.cluster_id), ("c1/3", "c1"))
        self.assertEqual(changed, ["c1/3"])
        stored = load_identity(self.storage(db), KV, 0, PEERS_A, shard_group=3)
        self.assertEqual((stored.group_id, stored.cluster_id), ("c1/3", "c1"))
        with self.assertRaisesRegex(IdentityError, "belongs to group 3 .*not --group 4"):
            load_identity(self.storage(db), KV, 0, PEERS_A, shard_group=4)
        with self.assertRaisesRegex(IdentityError, "belongs to a kv node"):
            load_identity(self.storage(db), META, 0, PEERS_A)

    def test_a_single_group_switched_to_sharded_keeps_its_group_id(self) -> None:
        db = MemoryDB()
        load_identity(self.storage(db), KV, 0, PEERS_A)
        ident = load_identity(self.storage(db), KV, 0, PEERS_A, shard_group=1)
        ident.learn_cluster("c1", "meta")
        self.assertEqual((ident.group_id, ident.cluster_id), (A, "c1"))


class LinkTests(unittest.TestCase):
    """PeerTransport's links over real loopback sockets."""

    def setUp(self) -> None:
        self.errors = capture_errors(self)

    def serve(self, identity: Identity, port: int) -> Handler:
        handler = Handler(1)
        listening = reactor.listenTCP(  # type: ignore[attr-defined]
            port, PeerServerFactory(handler, identity), interface="127.0.0.1"
        )
        self.addCleanup(listening.stopListening)
        return handler

    def transport(self, identity: Identity, port: int) -> PeerTransport:
        t = PeerTransport(reactor, Handler(0), identity, {1: f"127.0.0.1:{port}"}, lambda n: None)
        t.startService()
        self.addCleanup(t.stopService)
        return t

    @defer.inlineCallbacks
    def wait_for(self, predicate: Any, timeout: float = 5.0) -> Any:
        for _ in range(int(timeout / 0.02)):
            if predicate():
                return
            yield task.deferLater(reactor, 0.02, lambda: None)
        self.fail("condition not reached")

    @defer.inlineCallbacks
    def test_a_peer_of_another_group_is_refused_on_both_sides(self) -> Any:
        (port,) = free_ports(1)
        self.serve(Identity(KV, 1, B), port)
        t = self.transport(Identity(KV, 0, A), port)
        yield self.wait_for(lambda: t.refused())
        self.assertIsNone(t.links[1].proto)
        self.assertIn("peer 1 at 127.0.0.1", t.refused()[1])
        self.assertIn("refused this node", t.refused()[1])
        with self.assertRaisesRegex(LeaderUnreachable, "refused this node"):
            yield t.forward_propose(1, b"x")
        # Nothing more is logged while the refused link idles.
        yield task.deferLater(reactor, 0.5, lambda: None)
        self.assertEqual(len(self.errors), 2, self.errors)
        self.assertTrue(any("refused a peer link" in e for e in self.errors))
        self.assertTrue(any("no Raft messages go to it" in e for e in self.errors))

    @defer.inlineCallbacks
    def test_a_joining_node_learns_the_group_id_from_the_peer(self) -> Any:
        (port,) = free_ports(1)
        self.serve(Identity(KV, 1, A), port)
        me = Identity(KV, 0, learn=True)
        t = self.transport(me, port)
        self.assertEqual((yield t.forward_propose(1, b"x")), b"ok:x")
        self.assertEqual(me.group_id, A)

    @defer.inlineCallbacks
    def test_a_node_that_waits_for_its_id_links_up_once_it_knows_it(self) -> Any:
        (port,) = free_ports(1)
        server = Identity(KV, 1, shard_group=1)
        handler = self.serve(server, port)
        me = Identity(KV, 0, shard_group=1)
        t = self.transport(me, port)
        yield task.deferLater(reactor, 0.3, lambda: None)
        self.assertIsNotNone(t.links[1].waiting)
        me.learn_cluster("c1", "meta")
        yield task.deferLater(reactor, 0.2, lambda: None)
        self.assertIsNone(t.links[1].proto)  # the peer does not know its id yet
        server.learn_cluster("c1", "meta")
        yield self.wait_for(lambda: t.links[1].proto is not None)
        self.assertEqual((yield t.forward_propose(1, b"y")), b"ok:y")
        self.assertEqual(handler.proposed, [b"y"])
        self.assertEqual(self.errors, [])
