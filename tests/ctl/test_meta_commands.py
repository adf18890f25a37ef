"""eraftctl: commands against the admin API (StubTreq), output, errors, exit codes."""

from __future__ import annotations

import io
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer, error, task
from twisted.trial import unittest

from eraft_twisted.ctl.args import parse_args
from eraft_twisted.ctl.commands import run
from eraft_twisted.ctl.errors import CtlError
from eraft_twisted.ctl.formatting import format_config, table
from eraft_twisted.ctl.groups import KVClient
from eraft_twisted.meta.http import AdminAPI
from tests.ctl.fakes import FakeServers, RefusingHTTP
from tests.meta.test_http import FakeNode


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
