"""eraftctl: commands against the admin API (StubTreq), output, errors, exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer, error, task
from twisted.trial import unittest

from eraft_twisted.cli import (
    CtlError,
    KVClient,
    MetaClient,
    changed_ranges,
    format_config,
    format_size,
    parse_args,
    progress_bar,
    ranges_done,
    run,
    table,
    wait_for_data,
)
from eraft_twisted.meta.http import AdminAPI
from eraft_twisted.resp.client import ReplyError
from eraft_twisted.server.info import raft_fields
from tests.meta.test_http import FakeNode
from tests.procs import ROOT, Cluster, eraftctl, free_ports


class RefusingHTTP:
    """A treq stand-in whose every connection is refused."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def request(self, method: str, url: str, **kw: Any) -> defer.Deferred[Any]:
        self.urls.append(url)
        return defer.fail(error.ConnectionRefusedError("Connection refused"))


class CliTests(unittest.TestCase):
    def setUp(self) -> None:
        self.node = FakeNode()
        addresses = {0: "127.0.0.1:8188", 1: "127.0.0.1:8189", 2: "127.0.0.1:8190"}
        self.http: Any = StubTreq(AdminAPI(self.node, self.node.app, lambda: addresses))

    def ctl(self, *argv: str, http: Any = None) -> str:
        out = io.StringIO()
        args = parse_args(["--meta", "http://127.0.0.1:8080", *argv])
        args.timeout = None
        # No kv group serves these fake servers: do not wait for data to move.
        args.no_wait = True
        # No kv server answers: the groups' leaders show as unreachable.
        kv = KVClient(task.Clock(), connect=FakeServers().connect)
        code = self.successResultOf(defer.ensureDeferred(run(args, http or self.http, out, kv)))
        self.assertEqual(code, 0)
        return out.getvalue()

    def ctl_error(self, *argv: str, http: Any = None) -> str:
        args = parse_args(["--meta", "http://127.0.0.1:8080", *argv])
        args.timeout = None
        f = self.failureResultOf(
            defer.ensureDeferred(run(args, http or self.http, io.StringIO())), CtlError
        )
        return str(f.value)

    def test_join_rebalance_config_tables(self) -> None:
        out = self.ctl("join", "1", "127.0.0.1:7000", "127.0.0.1:7001")
        self.assertTrue(out.startswith("config 1: group 1 joined; 16384 slots changed owner\n"))
        self.ctl("join", "2", "127.0.0.1:7100")
        out = self.ctl("rebalance")
        self.assertEqual(
            out,
            "config 3: rebalanced; 8192 slots changed owner\n"
            "\n"
            "config 3: 2 groups, 16384 of 16384 slots owned\n"
            "\n"
            "GROUP  SLOTS  RANGES  SERVERS\n"
            "1      8192   1       127.0.0.1:7000,127.0.0.1:7001\n"
            "2      8192   1       127.0.0.1:7100\n"
            "\n"
            "RANGE       SLOTS  GROUP\n"
            "0-8191      8192   1\n"
            "8192-16383  8192   2\n"
            "\n"
            "migrations in flight: none\n",
        )
        self.assertIn("no change: config 3 already balanced", self.ctl("rebalance"))
        out = self.ctl("move", "5", "5", "2")
        self.assertIn("config 4: slot 5 moved to group 2; 1 slot changed owner", out)
        self.assertIn("\n5           1      2\n", out)
        out = self.ctl("config", "1")
        self.assertIn("config 1: 1 group, 16384 of 16384 slots owned", out)
        self.assertIn("0-16383  16384  1", out)
        out = self.ctl("config", "0")
        self.assertIn("0-16383  16384  (unowned)", out)
        self.assertIn("group 2 left", self.ctl("leave", "2"))

    def test_json_output(self) -> None:
        res = json.loads(self.ctl("--json", "join", "7", "h:1"))
        self.assertEqual((res["changed"], res["config"]["groups"]), (True, {"7": ["h:1"]}))
        cfg = json.loads(self.ctl("config", "--json"))  # --json after the command too
        self.assertEqual(cfg["ranges"], [[0, 16383, 7]])
        st = json.loads(self.ctl("status", "--json"))
        self.assertEqual(set(st), {"node", "config", "groups"})
        self.assertEqual(st["node"]["leader_addr"], "127.0.0.1:8189")

    def test_status_text(self) -> None:
        out = self.ctl("status")
        self.assertIn("meta node 0: follower, term 4, leader node 1 at 127.0.0.1:8189", out)
        self.assertIn("0   127.0.0.1:8188  voter  this node", out)
        self.assertIn("1   127.0.0.1:8189  voter  leader", out)
        self.assertIn("config 0: 0 groups, 0 of 16384 slots owned", out)

    def test_server_errors_are_one_line_with_the_status(self) -> None:
        self.assertEqual(self.ctl_error("leave", "3"), "unknown group 3 (HTTP 409)")
        self.assertEqual(self.ctl_error("config", "9"), "no config 9 (latest is 0) (HTTP 404)")
        self.assertEqual(
            self.ctl_error("move", "9", "1", "1"), "lo (9) must not be above hi (1) (HTTP 400)"
        )
        self.node.failure = RuntimeError("x")
        self.assertIn("(HTTP 500)", self.ctl_error("status"))
        self.flushLoggedErrors(RuntimeError)

    def test_connection_refused_tries_every_server(self) -> None:
        http = RefusingHTTP()
        msg = self.ctl_error("status", http=http)
        self.assertEqual(
            msg, "cannot reach the meta server http://127.0.0.1:8080: connection refused"
        )
        args = parse_args(["--meta", "127.0.0.1:1,http://127.0.0.1:2/", "config"])
        args.timeout = None
        f = self.failureResultOf(defer.ensureDeferred(run(args, http, io.StringIO())), CtlError)
        self.assertEqual(
            str(f.value),
            "cannot reach any meta server (http://127.0.0.1:1: connection refused; "
            "http://127.0.0.1:2: connection refused)",
        )
        self.assertEqual(
            http.urls[-2:], ["http://127.0.0.1:1/config/-1", "http://127.0.0.1:2/config/-1"]
        )

    def test_failover_to_the_next_server(self) -> None:
        stub: Any = self.http

        class FirstRefuses:
            def request(self, method: str, url: str, **kw: Any) -> defer.Deferred[Any]:
                if url.startswith("http://127.0.0.1:1"):
                    return defer.fail(error.ConnectionRefusedError())
                return stub.request(method, url.replace(":9", ":8080"), **kw)

            def content(self, response: Any) -> defer.Deferred[bytes]:
                return stub.content(response)

        args = parse_args(
            ["--meta", "127.0.0.1:1,127.0.0.1:9", "join", "--no-wait", "1", "127.0.0.1:7000"]
        )
        args.timeout = None
        out = io.StringIO()
        self.successResultOf(defer.ensureDeferred(run(args, FirstRefuses(), out)))
        self.assertIn("config 1: group 1 joined", out.getvalue())

    def test_table_and_migrations_rendering(self) -> None:
        self.assertEqual(table(["A", "BB"], [(1, 2), ("long", "")]), "A     BB\n1     2\nlong")
        cfg = {
            "num": 9,
            "groups": {"1": ["h:1"]},
            "ranges": [[0, 16383, 1]],
            "migrations": [{"lo": 0, "hi": 9, "from": 1, "to": 2}],
        }
        self.assertIn("migrations in flight:\n  lo=0 hi=9 from=1 to=2", format_config(cfg))


# -- fakes for the kv side (RESP) ---------------------------------------------------------------


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


class GroupCommandTests(unittest.TestCase):
    """transfer-leader, add-node, remove-node and status against fake kv groups."""

    def setUp(self) -> None:
        self.node = FakeNode()
        meta_addresses = {0: "127.0.0.1:8188", 1: "127.0.0.1:8189", 2: "127.0.0.1:8190"}
        self.http: Any = StubTreq(AdminAPI(self.node, self.node.app, lambda: meta_addresses))
        self.clock = task.Clock()
        self.resp = FakeServers()
        self.group1 = FakeGroup(PEERS)
        self.group2 = FakeGroup({0: "127.0.0.1:8100", 1: "127.0.0.1:8101"}, leader=1, term=7)
        # G1[0] is down; the others answer.
        self.resp.add_group(self.group1, {1: G1[1], 2: G1[2]})
        self.resp.add_group(self.group2, {0: G2[0], 1: G2[1]})
        self.ctl("join", "1", *G1)
        self.ctl("join", "2", *G2)
        self.assertEqual(self.resp.sent, [])

    def start(self, *argv: str, http: Any = None, timeout: float | None = None) -> Any:
        """Run eraftctl; a Deferred firing with (exit code, output)."""
        args = parse_args(["--meta", "http://127.0.0.1:8080", *argv])
        args.timeout = timeout
        if hasattr(args, "no_wait"):
            args.no_wait = True
        out = io.StringIO()
        kv = KVClient(self.clock, timeout=timeout, connect=self.resp.connect)
        d = defer.ensureDeferred(run(args, http or self.http, out, kv, self.clock))
        return d.addCallback(lambda code: (code, out.getvalue()))

    def ctl(self, *argv: str, http: Any = None) -> str:
        code, out = self.successResultOf(self.start(*argv, http=http))
        self.assertEqual(code, 0)
        return str(out)

    def ctl_error(self, *argv: str, http: Any = None) -> str:
        return str(self.failureResultOf(self.start(*argv, http=http), CtlError).value)

    def sent_to(self, address: str) -> list[list[str]]:
        return [argv for a, argv in self.resp.sent if a == address]

    def test_transfer_leader_goes_to_the_groups_servers_in_turn(self) -> None:
        out = self.ctl("transfer-leader", "1", "2")
        self.assertEqual(
            out, "group 1: leadership moved from node 0 to node 2 (127.0.0.1:8090), term 4\n"
        )
        # G1[0] refused the connection, so G1[1] got the command; group 2 was left alone.
        self.assertEqual(self.resp.connects, [G1[0], G1[1]])
        self.assertEqual(
            self.sent_to(G1[1]), [["RAFT.INFO"], ["RAFT.TRANSFER_LEADER", "2"], ["RAFT.INFO"]]
        )
        self.assertEqual({a for a, _ in self.resp.sent}, {G1[1]})
        self.assertEqual(self.group1.leader, 2)

    def test_transfer_leader_without_a_target_and_json(self) -> None:
        res = json.loads(self.ctl("--json", "transfer-leader", "2"))
        self.assertEqual(
            res,
            {
                "command": "transfer-leader",
                "group": 2,
                "server": G2[0],
                "reply": "OK",
                "previous_leader": 1,
                "leader": 0,
                "leader_addr": "127.0.0.1:8100",
                "term": 8,
            },
        )
        self.assertEqual(self.sent_to(G2[0])[1], ["RAFT.TRANSFER_LEADER"])

    def test_transfer_leader_waits_until_the_server_knows_the_new_leader(self) -> None:
        self.group1.stale_infos = 3  # the answer before and two polls after show node 0
        d = self.start("transfer-leader", "1")
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        code, out = self.successResultOf(d)
        self.assertIn("leadership moved from node 0 to node 2 (127.0.0.1:8090)", out)
        self.assertEqual(len(self.sent_to(G1[1])), 5)

    def test_transfer_to_the_current_leader(self) -> None:
        out = self.ctl("transfer-leader", "1", "0")
        self.assertEqual(out, "group 1: node 0 (127.0.0.1:8088) already leads, term 3\n")

    def test_error_reply_is_one_line_and_not_retried(self) -> None:
        self.assertEqual(
            self.ctl_error("transfer-leader", "1", "7"),
            "127.0.0.1:7001 replied: ERR node 7 is not a voter",
        )
        self.assertEqual(self.resp.connects, [G1[0], G1[1]])
        self.assertEqual(
            self.ctl_error("remove-node", "1", "9"),
            "127.0.0.1:7001 replied: ERR node 9 is not a member",
        )
        self.assertEqual(self.group1.leader, 0)

    def test_unknown_group_and_no_server_reachable(self) -> None:
        self.assertEqual(
            self.ctl_error("transfer-leader", "3"), "no group 3 in config 2 (groups: 1, 2)"
        )
        self.resp.nodes.clear()
        self.assertEqual(
            self.ctl_error("add-node", "2", "5", "127.0.0.1:8105"),
            "cannot reach any server of group 2 (127.0.0.1:7100: connection refused; "
            "127.0.0.1:7101: connection refused)",
        )

    def test_no_answer_in_time_is_not_sent_elsewhere(self) -> None:
        self.resp.nodes[G1[1]] = lambda argv: defer.Deferred()
        d = self.start("remove-node", "1", "2", timeout=5)
        self.clock.advance(5)
        f = self.failureResultOf(d, CtlError)
        self.assertEqual(
            str(f.value),
            "127.0.0.1:7001 did not answer within 5s (the change may still be applied)",
        )
        self.assertEqual(self.resp.connects, [G1[0], G1[1]])

    def test_add_and_remove_node(self) -> None:
        out = self.ctl("add-node", "1", "3", "127.0.0.1:8091")
        self.assertEqual(
            out,
            "group 1: node 3 (127.0.0.1:8091) added as a learner; it becomes a voter once "
            "caught up\nmembers now: voters 0,1,2; learners 3\n",
        )
        self.assertEqual(self.sent_to(G1[1])[0], ["RAFT.NODE", "ADD", "3", "127.0.0.1:8091"])
        out = self.ctl("remove-node", "1", "1")
        self.assertEqual(out, "group 1: node 1 removed\nmembers now: voters 0,2; learners 3\n")
        self.assertIn(["RAFT.NODE", "REMOVE", "1"], self.sent_to(G1[1]))

    def test_server_option_needs_no_meta(self) -> None:
        http = RefusingHTTP()
        server = f"{G1[0]},{G1[2]}"
        res = json.loads(
            self.ctl("--server", server, "--json", "add-node", "4", "127.0.0.1:8092", http=http)
        )
        self.assertEqual(http.urls, [])
        self.assertEqual(
            res,
            {
                "command": "add-node",
                "group": None,
                "server": G1[2],
                "reply": "OK",
                "node_id": 4,
                "peer": "127.0.0.1:8092",
                "voters": [0, 1, 2],
                "learners": [4],
            },
        )
        out = self.ctl("transfer-leader", "1", "--server", server, http=http)
        self.assertEqual(
            out,
            "group at 127.0.0.1:7000,127.0.0.1:7002: leadership moved from node 0 to node 1 "
            "(127.0.0.1:8089), term 4\n",
        )
        self.assertEqual(self.sent_to(G1[2])[-2], ["RAFT.TRANSFER_LEADER", "1"])
        out = self.ctl("--server", server, "status", http=http)
        self.assertEqual(
            out,
            "GROUP  LEADER                   TERM  APPLIED  ASKED\n"
            "-      node 1 (127.0.0.1:8089)  4     41       127.0.0.1:7002\n"
            "\n"
            "ID  ADDRESS         ROLE     NOTES\n"
            "0   127.0.0.1:8088  voter\n"
            "1   127.0.0.1:8089  voter    leader\n"
            "2   127.0.0.1:8090  voter    answered\n"
            "4   127.0.0.1:8092  learner\n",
        )
        self.assertEqual(http.urls, [])

    def test_status_shows_each_groups_leader(self) -> None:
        self.resp.nodes.pop(G2[0])
        self.resp.nodes.pop(G2[1])
        self.resp.hanging.add(G2[1])
        d = self.start("status", timeout=30)
        self.assertNoResult(d)
        # Each server gets at most STATUS_SERVER_TIMEOUT, not the whole --timeout.
        self.clock.advance(2)
        code, out = self.successResultOf(d)
        self.assertIn(
            "GROUP  LEADER                   TERM  APPLIED  ASKED\n"
            "1      node 0 (127.0.0.1:8088)  3     41       127.0.0.1:7001\n"
            "2      unreachable              -     -        -\n",
            out,
        )
        self.assertIn("config 2: 2 groups", out)
        d = self.start("status", "--json", timeout=30)
        self.clock.advance(2)
        st = json.loads(self.successResultOf(d)[1])
        one, two = st["groups"]
        self.assertEqual(
            (one["group"], one["leader"], one["term"], one["applied_index"], one["server"]),
            (1, 0, 3, 41, G1[1]),
        )
        self.assertEqual(
            two,
            {
                "group": 2,
                "error": "unreachable",
                "problems": [
                    "127.0.0.1:7100: connection refused",
                    "127.0.0.1:7101: connection timed out",
                ],
            },
        )

    def test_usage_errors(self) -> None:
        bad = [
            ["transfer-leader"],
            ["transfer-leader", "1", "2", "3"],
            ["--server", "h:1", "transfer-leader", "1", "2"],
            ["add-node", "1", "2"],
            ["add-node", "1", "2", "no-port"],
            ["--server", "h:1", "remove-node"],
            ["remove-node", "x", "1"],
            ["--server", "h:1", "join", "1", "h:2"],
            ["--server", "nocolon", "status"],
        ]
        for argv in bad:
            err = io.StringIO()
            with self.assertRaises(SystemExit) as cm:
                old, sys.stderr = sys.stderr, err
                try:
                    parse_args(argv)
                finally:
                    sys.stderr = old
            self.assertEqual(cm.exception.code, 2, argv)
            self.assertTrue(err.getvalue().startswith("eraftctl: error: "), argv)
        args = parse_args(["--server", "h:1", "add-node", "3", "h:2"])
        self.assertEqual((args.group, args.node_id, args.peer), (None, 3, "h:2"))
        args = parse_args(["transfer-leader", "4"])
        self.assertEqual((args.group, args.node_id, args.kv_servers), (4, None, None))


class KVClientTests(unittest.TestCase):
    def test_connection_reused_and_closed(self) -> None:
        resp = FakeServers()
        resp.add_group(FakeGroup(PEERS), {0: G1[0]})
        kv = KVClient(task.Clock(), connect=resp.connect)
        self.successResultOf(defer.ensureDeferred(kv.call(G1[0], "RAFT.INFO")))
        self.successResultOf(defer.ensureDeferred(kv.call(G1[0], "RAFT.INFO")))
        self.assertEqual(resp.connects, [G1[0]])
        kv.close()
        self.assertEqual(resp.closed, [G1[0]])


# -- migration progress ------------------------------------------------------------------------


class FakeResponse:
    def __init__(self, body: Any, code: int = 200) -> None:
        self.code = code
        self.body = json.dumps(body).encode()


class ScriptedMigrations:
    """StubTreq, except that GET /migrations answers the next scripted report."""

    def __init__(self, stub: Any, reports: list[dict[str, Any]]) -> None:
        self.stub = stub
        self.reports = reports

    def request(self, method: str, url: str, **kw: Any) -> defer.Deferred[Any]:
        if url.endswith("/migrations"):
            return defer.succeed(FakeResponse(self.reports.pop(0)))
        return self.stub.request(method, url, **kw)

    def content(self, response: Any) -> defer.Deferred[bytes]:
        if isinstance(response, FakeResponse):
            return defer.succeed(response.body)
        return self.stub.content(response)


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


OLD = {"num": 3, "groups": {"1": [], "2": []}, "ranges": [[0, 8191, 1], [8192, 16383, 2]]}
NEW = {
    "num": 4,
    "groups": {"1": [], "2": [], "3": []},
    "ranges": [[0, 99, 3], [100, 8191, 1], [8192, 8291, 3], [8292, 8391, 1], [8392, 16383, 2]],
}


def group_report(gid: int, config: int, incoming: str = "", copying: Any = ()) -> dict[str, Any]:
    return {
        "group": gid,
        "config": config,
        "incoming": incoming,
        "outgoing": "",
        "release_pending": "",
        "copying": list(copying),
    }


class ProgressTests(unittest.TestCase):
    def test_progress_bar(self) -> None:
        self.assertEqual(
            progress_bar(3, 8, 12345, 1_234_567),
            "[#######.............] 3/8 ranges  12,345 keys  1.2 MB copied",
        )
        self.assertEqual(
            progress_bar(0, 1, 0, 0), "[....................] 0/1 range  0 keys  0 B copied"
        )
        self.assertEqual(progress_bar(7, 8, 1, 999)[:22], "[#################...]")
        self.assertEqual(progress_bar(0, 0, 0, 0)[:27], "[####################] 0/0 ")
        self.assertEqual(progress_bar(1, 2, 0, 0, width=4)[:6], "[##..]")

    def test_format_size(self) -> None:
        self.assertEqual(
            [format_size(n) for n in (0, 999, 1000, 1_250, 2_500_000_000, 7 * 10**12)],
            ["0 B", "999 B", "1.0 kB", "1.2 kB", "2.5 GB", "7.0 TB"],
        )

    def test_changed_ranges(self) -> None:
        self.assertEqual(
            changed_ranges(OLD, NEW),
            [(0, 99, 1, 3), (8192, 8291, 2, 3), (8292, 8391, 2, 1)],
        )
        self.assertEqual(changed_ranges(NEW, NEW), [])
        unowned = {"num": 0, "groups": {}, "ranges": [[0, 16383, 0]]}
        self.assertEqual(changed_ranges(unowned, OLD), [(0, 8191, 0, 1), (8192, 16383, 0, 2)])

    def test_ranges_done(self) -> None:
        moved = changed_ranges(OLD, NEW)

        def report(*groups: dict[str, Any]) -> dict[str, Any]:
            return {"num": 4, "groups": list(groups), "in_flight": 1}

        # Nobody has applied config 4 yet: nothing is done.
        r = report(group_report(1, 3), group_report(2, 3), group_report(3, 3))
        self.assertEqual(ranges_done(moved, r, 4), 0)
        # Group 3 applied it and still pulls 8192-8291; group 1 finished 8292-8391.
        r = report(group_report(1, 4), group_report(2, 4), group_report(3, 4, "8200-8291:g2@4"))
        self.assertEqual(ranges_done(moved, r, 4), 2)
        r = report(group_report(1, 4), {"group": 3, "error": "no server answered"})
        self.assertEqual(ranges_done(moved, r, 4), 1)
        r = report(group_report(1, 4), group_report(2, 4), group_report(3, 4))
        self.assertEqual(ranges_done(moved, r, 4), 3)
        # Slots going to nobody, or to a group gone since, have nothing to wait for.
        self.assertEqual(ranges_done([(0, 9, 1, 0), (10, 19, 1, 5)], report(), 4), 2)

    def wait(self, reports: list[dict[str, Any]], out: io.StringIO, show: bool = True) -> None:
        node = FakeNode()
        stub = StubTreq(AdminAPI(node, node.app, lambda: {}))
        client = MetaClient(["http://127.0.0.1:8080"], ScriptedMigrations(stub, reports))
        for path, body in (
            ("/join", {"group": 1, "servers": ["h:1"]}),
            ("/join", {"group": 2, "servers": ["h:2"]}),
            ("/rebalance", {}),  # config 3: 0-8191 on group 1, the rest on group 2
            ("/move", {"lo": 8192, "hi": 8291, "group": 1}),  # config 4
        ):
            self.successResultOf(defer.ensureDeferred(client.request("POST", path, body)))
        clock = task.Clock()
        d = defer.ensureDeferred(wait_for_data(client, 4, out, show, clock))
        while not d.called:
            clock.advance(0.5)
        self.successResultOf(d)
        self.assertEqual(reports, [])

    def reports(self) -> list[dict[str, Any]]:
        copy = {"slots": "8192-8291", "config": 4, "keys": 1234, "bytes": 56_789}
        old_copy = {"slots": "0-9", "config": 2, "keys": 99, "bytes": 99}
        return [
            {"num": 4, "groups": [group_report(1, 3), group_report(2, 4)], "in_flight": 1},
            {
                "num": 4,
                "groups": [
                    group_report(1, 4, "8192-8291:g2@4", [copy, old_copy]),
                    group_report(2, 4),
                ],
                "in_flight": 1,
            },
            {"num": 4, "groups": [group_report(1, 4), group_report(2, 4)], "in_flight": 0},
        ]

    def test_wait_draws_a_bar_on_a_terminal(self) -> None:
        out = TTY()
        self.wait(self.reports(), out)
        self.assertEqual(
            out.getvalue(),
            "\rmoving data: [....................] 0/1 range  0 keys  0 B copied"
            "\rmoving data: [....................] 0/1 range  1,234 keys  56.8 kB copied"
            "\rmoving data: [####################] 1/1 range  1,234 keys  56.8 kB copied\n",
        )

    def test_wait_prints_the_final_bar_once_when_not_a_terminal(self) -> None:
        out = io.StringIO()
        self.wait(self.reports(), out)
        self.assertEqual(
            out.getvalue(),
            "moving data: [####################] 1/1 range  1,234 keys  56.8 kB copied\n",
        )
        out = TTY()
        self.wait(self.reports(), out, show=False)
        self.assertEqual(out.getvalue(), "")

    def test_move_waits_and_json_prints_no_bar(self) -> None:
        done = {"num": 3, "groups": [group_report(1, 3), group_report(2, 3)], "in_flight": 0}
        pulling = {
            "num": 3,
            "groups": [group_report(1, 3), group_report(2, 3, "0-99:g1@3")],
            "in_flight": 1,
        }
        for flag in ("--json", "--timeout=5"):
            node = FakeNode()
            stub = StubTreq(AdminAPI(node, node.app, lambda: {}))
            for argv in (["join", "1", "h:1"], ["join", "2", "h:2"]):
                args = parse_args(["--meta", "127.0.0.1:8080", *argv, "--no-wait"])
                self.successResultOf(defer.ensureDeferred(run(args, stub, io.StringIO())))
            out = TTY() if flag == "--json" else io.StringIO()
            args = parse_args(["--meta", "127.0.0.1:8080", flag, "move", "0", "99", "2"])
            http = ScriptedMigrations(stub, [pulling, done])
            clock = task.Clock()
            d = defer.ensureDeferred(run(args, http, out, KVClient(clock), clock))
            self.assertNoResult(d)
            clock.advance(0.5)
            self.assertEqual(self.successResultOf(d), 0)
            self.assertEqual(http.reports, [])
            if flag == "--json":
                self.assertEqual(json.loads(out.getvalue())["config"]["num"], 3)
            else:
                self.assertTrue(
                    out.getvalue().startswith(
                        "moving data: [####################] 1/1 range  0 keys  0 B copied\n"
                        "config 3: slots 0-99 moved to group 2"
                    ),
                    out.getvalue(),
                )


class CliProcessTests(unittest.TestCase):
    """The real console entry point: exit codes and one-line messages."""

    def run_ctl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return eraftctl(*argv, timeout=30)

    def test_connection_refused(self) -> None:
        port = free_ports(1)[0]
        p = self.run_ctl("--meta", f"http://127.0.0.1:{port}", "status")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertEqual(
            p.stderr,
            f"eraftctl: error: cannot reach the meta server http://127.0.0.1:{port}: "
            "connection refused\n",
        )

    def test_usage_errors_exit_2(self) -> None:
        for argv in (["frobnicate"], ["move", "1", "x", "2"], [], ["join", "1"]):
            p = self.run_ctl(*argv)
            self.assertEqual(p.returncode, 2, argv)
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertTrue(lines[0].startswith("eraftctl: error: "), p.stderr)

    def test_help(self) -> None:
        p = self.run_ctl("--help")
        self.assertEqual(p.returncode, 0)
        for cmd in ("status", "config", "join", "leave", "move", "rebalance", "migrations"):
            self.assertIn(cmd, p.stdout)
        for cmd in ("transfer-leader", "add-node", "remove-node", "--server HOST:PORT"):
            self.assertIn(cmd, p.stdout)
        p = self.run_ctl("transfer-leader", "--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--server HOST:PORT[,...] transfer-leader [NODE_ID]", p.stdout)
        self.assertTrue(os.path.isdir(ROOT))


class CliClusterTests(unittest.TestCase):
    """eraftctl --server against a real 3-node group."""

    def test_transfer_leader_and_status(self) -> None:
        cluster = Cluster(3).start()
        self.addCleanup(cluster.stop)
        old = cluster.leader()
        follower = next(n for n in cluster.nodes if n is not old)
        server = f"127.0.0.1:{follower.resp_port}"
        deadline = time.time() + 20
        while follower.client().info("raft")["raft_leader_id"] != old.node_id:
            self.assertLess(time.time(), deadline, "the follower never heard of the leader")
            time.sleep(0.1)
        p = eraftctl("--server", server, "--json", "transfer-leader")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        res = json.loads(p.stdout)
        self.assertEqual((res["server"], res["reply"]), (server, "OK"))
        self.assertEqual(res["previous_leader"], old.node_id)
        new = res["leader"]
        self.assertIn(new, [n.node_id for n in cluster.nodes if n is not old])
        self.assertEqual(res["leader_addr"], old.peers[new])
        info = cluster.nodes[new].client().execute_command("INFO", "raft")
        self.assertEqual(info["raft_role"], "leader")
        p = eraftctl("--server", server, "status")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(f"node {new} ({old.peers[new]})", p.stdout.splitlines()[1])
        # An error reply: one line on stderr, exit code 1.
        p = eraftctl("--server", server, "transfer-leader", "7")
        self.assertEqual((p.returncode, p.stdout), (1, ""))
        self.assertEqual(
            p.stderr, f"eraftctl: error: {server} replied: ERR node 7 is not a voter\n"
        )
