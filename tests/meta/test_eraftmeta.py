"""End to end: a 3-node meta group as real ``twistd eraftmeta`` processes,
driven with ``eraftctl`` and plain HTTP."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from eraft_twisted.rpc.metaclient import AMPMetaClient
from eraft_twisted.tap.eraftmeta import Options
from eraft_twisted.testing.procs import MetaProcess
from tests.procs import ROOT, eraftctl, free_ports
from tests.test_tap_options import OptionsCase
from tests.waiting import wait_until


def http(method: str, url: str, body: object = None, timeout: float = 10.0) -> tuple[int, Any]:
    """One JSON request; returns (status, decoded body) for errors too."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


class MetaGroupTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="eraft-meta-test-")
        if not os.environ.get("ERAFT_KEEP_TEST_DIRS"):
            self.addCleanup(shutil.rmtree, self.dir, True)
        ports = free_ports(6)
        peers = [f"127.0.0.1:{p}" for p in ports[:3]]
        self.nodes = [
            MetaProcess(
                i,
                peers,
                ports[3 + i],
                os.path.join(self.dir, f"meta{i}"),
                ["--tick-ms", "50", "--snapshot-entries", "5"],
            )
            for i in range(3)
        ]
        for n in self.nodes:
            self.addCleanup(n.stop)
            n.start()
        for n in self.nodes:
            n.wait_up()

    def leader(self, timeout: float = 20.0) -> MetaProcess:
        def leading() -> MetaProcess | None:
            for n in self.nodes:
                try:
                    if n.alive and n.status()["role"] == "leader":
                        return n
                except OSError:
                    pass
            return None

        leader = wait_until(leading, timeout, interval=0.1, message="a meta leader")
        assert leader is not None
        return leader

    def ctl(self, *argv: str, meta: str) -> str:
        p = eraftctl("--meta", meta, *argv)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def test_configs_through_eraftctl_and_http_surviving_the_leader(self) -> None:
        leader = self.leader()
        f1, f2 = [n for n in self.nodes if n is not leader]

        # Writes through followers are forwarded to the leader.
        out = self.ctl("join", "1", "127.0.0.1:7001", "127.0.0.1:7002", meta=f1.url)
        self.assertIn("config 1: group 1 joined; 16384 slots changed owner", out)
        code, res = http("POST", f2.url + "/join", {"group": 2, "servers": ["127.0.0.1:7101"]})
        self.assertEqual((code, res["config"]["num"]), (200, 2))
        self.assertEqual(res["config"]["ranges"], [[0, 16383, 1]])
        res = json.loads(self.ctl("--json", "rebalance", meta=leader.url))
        self.assertEqual(res["config"]["ranges"], [[0, 8191, 1], [8192, 16383, 2]])
        code, res = http("POST", f1.url + "/move", {"lo": 0, "hi": 99, "group": 2})
        self.assertEqual((code, res["config"]["num"], res["moved"]), (200, 4, 100))

        # Every node answers with every config (linearizable reads).
        for n in self.nodes:
            self.assertEqual(http("GET", n.url + "/config")[1]["num"], 4)
            self.assertEqual(http("GET", n.url + "/config/1")[1]["ranges"], [[0, 16383, 1]])
        out = self.ctl("config", "1", meta=f2.url)
        self.assertIn("0-16383  16384  1", out)
        self.assertIn("config 4: 2 groups", self.ctl("status", meta=f2.url))

        # Errors: JSON with a 4xx status; eraftctl exits 1 with one line.
        self.assertEqual(http("POST", f1.url + "/leave", {"group": 9})[0], 409)
        self.assertEqual(http("GET", f1.url + "/config/99")[0], 404)
        self.assertEqual(http("POST", f1.url + "/move", {"lo": 1})[0], 400)
        p = eraftctl("--meta", f2.url, "leave", "9")
        self.assertEqual(
            (p.returncode, p.stderr), (1, "eraftctl: error: unknown group 9 (HTTP 409)\n")
        )

        # Kill the leader: the others elect a new one and carry on. eraftctl
        # skips the dead server (connection refused) and uses the next one.
        leader.kill()
        urls = ",".join(n.url for n in [leader, f1, f2])
        out = self.ctl("join", "3", "127.0.0.1:7201", meta=urls)
        self.assertIn("config 5: group 3 joined", out)
        res = json.loads(self.ctl("--json", "rebalance", meta=urls))
        counts = sorted(
            sum(hi - lo + 1 for lo, hi, g in res["config"]["ranges"] if g == gid)
            for gid in (1, 2, 3)
        )
        self.assertEqual(
            (res["config"]["num"], res["moved"], counts), (6, 5461, [5461, 5461, 5462])
        )

        # Enough writes while it is down that the old leader's missing entries
        # are compacted away (--snapshot-entries 5, 10 kept): it catches up
        # by snapshot, and its configs are reloaded from the installed data.
        for i in range(25):
            code, res = http("POST", f1.url + "/move", {"lo": i, "hi": i, "group": 1 + i % 3})
            self.assertEqual(code, 200, res)
        latest = http("GET", f2.url + "/config")[1]
        leader.start()
        leader.wait_up()

        def caught_up() -> dict[str, Any] | None:
            code, cfg = http("GET", leader.url + "/config")
            return cfg if code == 200 and cfg["num"] == latest["num"] else None

        cfg = wait_until(caught_up, 20, message=f"the old leader at config {latest['num']}")
        self.assertEqual(cfg, latest, leader.tail_log())
        self.assertEqual(
            http("GET", leader.url + "/config/2")[1]["groups"],
            {"1": ["127.0.0.1:7001", "127.0.0.1:7002"], "2": ["127.0.0.1:7101"]},
        )
        self.assertEqual(len(leader.status()["members"]), 3)

    @defer.inlineCallbacks
    def test_kv_nodes_register_and_query_over_amp(self) -> Any:
        """What a kv node started with --meta does: AMP to the meta peer ports."""
        from twisted.internet import reactor

        leader = self.leader()
        follower = next(n for n in self.nodes if n is not leader)
        dead = f"127.0.0.1:{free_ports(1)[0]}"
        client = AMPMetaClient(reactor, [dead, follower.peers[follower.node_id]], timeout=5)
        self.addCleanup(client.close)
        self.assertIsNone((yield client.query(1)))
        self.assertEqual((yield client.join(4, ["127.0.0.1:6379"])), 1)
        self.assertEqual((yield client.join(4, ["127.0.0.1:6379"])), 1)
        cfg = yield client.query(-1)
        self.assertEqual((cfg["num"], cfg["ranges"]), (1, [[0, 16383, 4]]))
        self.assertEqual(cfg["groups"], {"4": ["127.0.0.1:6379"]})
        code, res = http("POST", leader.url + "/join", {"group": 5, "servers": ["127.0.0.1:6379"]})
        self.assertEqual(code, 409, res)


class OptionsTests(OptionsCase):
    options_class = Options

    def test_defaults_are_a_one_node_group_on_localhost(self) -> None:
        cwd = os.getcwd()
        os.chdir(tempfile.mkdtemp(prefix="eraft-meta-opts-"))
        self.addCleanup(os.chdir, cwd)
        opts, err = self.parse()
        assert opts is not None
        self.assertEqual(err, "")
        self.assertEqual(
            (opts["id"], opts["peers"], opts["admin"], opts["data"]),
            (0, ["127.0.0.1:8188"], "127.0.0.1:8080", "./eraft-meta-data"),
        )

    def test_bad_options_are_one_line(self) -> None:
        for argv, message in [
            (["--id", "3", "--peers", "a:1,b:2"], "--id must be between 0 and 1, got 3"),
            (["--admin", "nope"], "--admin: bad address 'nope'"),
            (["--peers", "127.0.0.1:8188", "--admin", "127.0.0.1:8188"], "is also a peer"),
            (["--fsync", "sometimes"], "--fsync must be"),
            (["--bogus"], "option --bogus not recognized"),
            (["--config", "/nonexistent/eraftmeta.conf"], "cannot read config file"),
        ]:
            opts, err = self.parse(*argv)
            self.assertIsNone(opts, argv)
            self.assertTrue(err.startswith("eraftmeta: error: "), err)
            self.assertIn(message, err)
            self.assertEqual(err.count("\n"), 1, err)

    def test_config_file(self) -> None:
        path = os.path.join(ROOT, "etc", "eraftmeta.conf")
        data = tempfile.mkdtemp(prefix="eraft-meta-opts-")
        opts, err = self.parse("--config", path, "--id", "2", "--data", data)
        assert opts is not None, err
        self.assertEqual(
            (opts["id"], opts["admin"], len(opts["peers"]), opts["tick-ms"]),
            (2, "127.0.0.1:8080", 3, 100),
        )
        bad = os.path.join(data, "bad.conf")
        with open(bad, "w") as f:
            f.write("resp = 127.0.0.1:6379\n")
        opts, err = self.parse("--config", bad)
        self.assertIn("bad.conf:1: unknown option 'resp'", err)
