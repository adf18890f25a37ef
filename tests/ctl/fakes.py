"""Stand-ins for eraftctl's tests: a meta API that refuses every
connection, and kv groups answering RAFT.* admin commands (RESP)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, error

from eraft_twisted.resp.client import ReplyError
from eraft_twisted.server.info import raft_fields


class RefusingHTTP:
    """A treq stand-in whose every connection is refused."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def request(self, method: str, url: str, **kw: Any) -> defer.Deferred[Any]:
        self.urls.append(url)
        return defer.fail(error.ConnectionRefusedError("Connection refused"))


class FakeGroup:
    """One kv group's RAFT.* admin commands, answered the way eraft_twisted.kv
    does (RAFT.INFO text from the real ``raft_fields``)."""

    def __init__(self, peers: dict[int, str], leader: int = 0, term: int = 3) -> None:
        self.peers = dict(peers)
        self.leader = leader
        self.term = term
        self.voters = sorted(peers)
        self.learners: list[int] = []
        self.stale_infos = 0
        """RAFT.INFO answers that still show the old leader after a transfer."""
        self._old_leader = leader

    def handler(self, node_id: int) -> Any:
        return lambda argv: self.answer(node_id, argv)

    def answer(self, node_id: int, argv: list[str]) -> Any:
        cmd = argv[0].upper()
        if cmd == "RAFT.INFO":
            leader = self.leader
            if self.stale_infos:
                self.stale_infos -= 1
                leader = self._old_leader
            status = {
                "id": node_id,
                "role": "leader" if node_id == leader else "follower",
                "term": self.term,
                "leader": leader,
                "commit_index": 42,
                "applied_index": 41,
                "first_index": 1,
                "last_index": 42,
                "voters": self.voters,
                "learners": self.learners,
                "progress": {},
            }
            fields = raft_fields(status, self.peers)
            return ("# Raft\r\n" + "".join(f"{k}:{v}\r\n" for k, v in fields)).encode()
        if cmd == "RAFT.TRANSFER_LEADER":
            others = [v for v in self.voters if v != self.leader]
            target = int(argv[1]) if len(argv) > 1 else others[-1]
            if target not in self.voters:
                return ReplyError(f"ERR node {target} is not a voter")
            if target != self.leader:
                self._old_leader, self.leader = self.leader, target
                self.term += 1
            return b"OK"
        if cmd == "RAFT.NODE" and argv[1].upper() == "ADD":
            nid = int(argv[2])
            self.learners.append(nid)
            self.peers[nid] = argv[3]
            return b"OK"
        if cmd == "RAFT.NODE" and argv[1].upper() == "REMOVE":
            nid = int(argv[2])
            if nid not in self.voters + self.learners:
                return ReplyError(f"ERR node {nid} is not a member")
            self.voters = [v for v in self.voters if v != nid]
            self.learners = [v for v in self.learners if v != nid]
            return b"OK"
        return ReplyError(f"ERR unknown command '{argv[0]}'")


class FakeConn:
    """A connected RespClientProtocol stand-in."""

    def __init__(self, servers: FakeServers, address: str) -> None:
        self.servers = servers
        self.address = address
        self.connected_ = True
        self.lost: defer.Deferred[None] = defer.Deferred()

    def call(self, *args: Any) -> defer.Deferred[Any]:
        argv = [str(a) for a in args]
        self.servers.sent.append((self.address, argv))
        reply = self.servers.nodes[self.address](argv)
        if isinstance(reply, defer.Deferred):
            return reply
        if isinstance(reply, Exception):
            return defer.fail(reply)
        return defer.succeed(reply)

    def close(self) -> None:
        self.servers.closed.append(self.address)


class FakeServers:
    """The kv servers of a test: address -> handler(argv); any other
    address refuses connections, ``hanging`` ones never accept."""

    def __init__(self) -> None:
        self.nodes: dict[str, Any] = {}
        self.hanging: set[str] = set()
        self.sent: list[tuple[str, list[str]]] = []
        self.connects: list[str] = []
        self.closed: list[str] = []

    def add_group(self, group: FakeGroup, resp: dict[int, str]) -> None:
        for nid, address in resp.items():
            self.nodes[address] = group.handler(nid)

    def connect(self, address: str) -> defer.Deferred[Any]:
        self.connects.append(address)
        if address in self.hanging:
            return defer.Deferred()
        if address not in self.nodes:
            return defer.fail(error.ConnectionRefusedError("Connection refused"))
        return defer.succeed(FakeConn(self, address))


PEERS = {0: "127.0.0.1:8088", 1: "127.0.0.1:8089", 2: "127.0.0.1:8090"}
G1 = ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
G2 = ["127.0.0.1:7100", "127.0.0.1:7101"]
