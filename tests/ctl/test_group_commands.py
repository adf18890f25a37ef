"""eraftctl's group commands (transfer-leader, add-node, remove-node,
status) against fake kv groups, and the RESP client they use."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.trial import unittest

from eraft_twisted.ctl.args import parse_args
from eraft_twisted.ctl.commands import run
from eraft_twisted.ctl.errors import CtlError
from eraft_twisted.ctl.groups import KVClient
from eraft_twisted.meta.http import AdminAPI
from tests.ctl.fakes import G1, G2, PEERS, FakeGroup, FakeServers, RefusingHTTP
from tests.meta.test_http import FakeNode


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
