"""The admin API as a twisted.web resource, driven through treq's StubTreq."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.trial import unittest

from eraft_twisted.meta.app import MetaApplication
from eraft_twisted.meta.http import AdminAPI
from eraft_twisted.node.driver import RaftNode
from eraft_twisted.node.errors import RaftTimeout, RaftUnavailable
from eraft_twisted.raft.core import Config
from eraft_twisted.raft.types import ConfState, Entry, EntryType
from eraft_twisted.storage.leveldb import LevelDBStorage

URL = "http://127.0.0.1:8080"


class FakeRaw:
    def __init__(self, node_id: int, role: str = "follower", leader: int = 1) -> None:
        self.st = {
            "id": node_id,
            "role": role,
            "term": 4,
            "leader": leader,
            "commit_index": 10,
            "applied_index": 9,
            "last_index": 10,
            "voters": [0, 1, 2],
            "learners": [],
            "progress": {},
        }

    def status(self) -> dict[str, Any]:
        return self.st


class FakeNode:
    """Applies every proposal at once through a real MetaApplication."""

    def __init__(self) -> None:
        self.node_id = 0
        self.raw: Any = FakeRaw(0)
        self.storage = LevelDBStorage.in_memory(ConfState((0, 1, 2)))
        self.app = MetaApplication(self.storage)
        self.index = 0
        self.failure: Exception | None = None
        self.proposals: list[bytes] = []
        self.reads = 0

    def propose(self, data: bytes) -> defer.Deferred[Any]:
        if self.failure is not None:
            return defer.fail(self.failure)
        self.proposals.append(data)
        self.index += 1
        e = Entry(1, self.index, EntryType.NORMAL, data)
        self.storage.persist([e], None)
        return defer.succeed(self.app.apply_batch([e], None)[0])

    def read(self, fn: Callable[[], Any]) -> defer.Deferred[Any]:
        if self.failure is not None:
            return defer.fail(self.failure)
        self.reads += 1
        return defer.maybeDeferred(fn)


class AdminAPITests(unittest.TestCase):
    def setUp(self) -> None:
        self.node = FakeNode()
        addresses = {0: "127.0.0.1:8188", 1: "127.0.0.1:8189", 2: "127.0.0.1:8190"}
        self.http: Any = StubTreq(AdminAPI(self.node, self.node.app, lambda: addresses))

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        kw: dict[str, Any] = {}
        if raw is not None:
            kw["data"] = raw
        elif body is not None:
            kw["json"] = body
        response = self.successResultOf(self.http.request(method, URL + path, **kw))
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        return response.code, json.loads(self.successResultOf(self.http.content(response)))

    def test_join_move_rebalance_and_old_configs(self) -> None:
        code, cfg = self.call("GET", "/config")
        self.assertEqual((code, cfg["num"], cfg["groups"]), (200, 0, {}))
        self.assertEqual(cfg["ranges"], [[0, 16383, 0]])
        code, res = self.call("POST", "/join", {"group": 1, "servers": ["h:1", "h:2"]})
        self.assertEqual((code, res["changed"], res["moved"]), (200, True, 16384))
        self.assertEqual(res["config"]["groups"], {"1": ["h:1", "h:2"]})
        code, res = self.call("POST", "/join", {"group": 2, "servers": ["h:3"]})
        self.assertEqual(res["config"]["ranges"], [[0, 16383, 1]])
        code, res = self.call("POST", "/rebalance")
        self.assertEqual(res["config"]["ranges"], [[0, 8191, 1], [8192, 16383, 2]])
        code, res = self.call("POST", "/move", {"lo": 0, "hi": 9, "group": 2})
        self.assertEqual((code, res["config"]["num"], res["moved"]), (200, 4, 10))
        code, res = self.call("POST", "/move", {"lo": 0, "hi": 9, "group": 2})
        self.assertEqual((code, res["changed"], res["config"]["num"]), (200, False, 4))
        code, res = self.call("POST", "/leave", {"group": 2})
        self.assertEqual(res["config"]["ranges"], [[0, 16383, 1]])
        self.assertEqual(self.call("GET", "/config/1")[1]["ranges"], [[0, 16383, 1]])
        self.assertEqual(self.call("GET", "/config/-1")[1]["num"], 5)
        self.assertEqual(self.call("GET", "/config/4")[1]["migrations"], [])
        self.assertEqual(self.call("GET", "/config/")[1]["num"], 5)
        self.assertEqual(self.node.reads, 5)

    def test_errors(self) -> None:
        self.call("POST", "/join", {"group": 1, "servers": ["h:1"]})
        cases = [
            ("GET", "/config/7", None, None, 404, "no config 7 (latest is 1)"),
            ("GET", "/config/-3", None, None, 404, "no config -3"),
            ("GET", "/config/abc", None, None, 400, "config number must be an integer"),
            ("POST", "/leave", {"group": 9}, None, 409, "unknown group 9"),
            ("POST", "/move", {"lo": 0, "hi": 1, "group": 9}, None, 409, "unknown group 9"),
            ("POST", "/join", {"group": 2, "servers": ["h:1"]}, None, 409, "already belongs"),
            ("POST", "/join", {"group": "2", "servers": ["h:5"]}, None, 400, "group must be"),
            ("POST", "/join", {"group": 2}, None, 400, "missing field 'servers'"),
            ("POST", "/join", {"group": 2, "servers": []}, None, 400, "non-empty list"),
            ("POST", "/join", {"group": 2, "servers": ["nope"]}, None, 400, "host:port"),
            ("POST", "/move", {"lo": 5, "hi": 4, "group": 1}, None, 400, "must not be above"),
            ("POST", "/move", {"lo": 0, "hi": 16384, "group": 1}, None, 400, "slot between"),
            ("POST", "/join", None, b"{not json", 400, "not valid JSON"),
            ("POST", "/join", None, b"[1, 2]", 400, "must be a JSON object"),
            ("POST", "/join", None, b"x" * 70000, 413, "request body over"),
            ("GET", "/join", None, None, 405, "use POST"),
            ("POST", "/config", None, None, 405, "use GET"),
            ("GET", "/nothing/here", None, None, 404, "no such endpoint: GET /nothing/here"),
        ]
        for method, path, body, raw, status, message in cases:
            code, res = self.call(method, path, body, raw)
            self.assertEqual(code, status, (method, path, res))
            self.assertIn(message, res["error"], (method, path))
            self.assertEqual(set(res), {"error"})
        # Bad input never reached the log: only the first join and the three
        # conflicts (decided by the state machine) were proposed.
        self.assertEqual(len(self.node.proposals), 4)

    def test_method_not_allowed_says_which(self) -> None:
        response = self.successResultOf(self.http.get(URL + "/rebalance"))
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders("allow"), ["POST"])

    def test_unavailable_is_503(self) -> None:
        self.node.failure = RaftTimeout("write not confirmed within 5s (no leader or no quorum)")
        code, res = self.call("POST", "/rebalance")
        self.assertEqual(code, 503)
        self.assertEqual(
            res["error"], "timeout: write not confirmed within 5s (no leader or no quorum)"
        )
        self.node.failure = RaftUnavailable("node is shutting down")
        code, res = self.call("GET", "/config")
        self.assertEqual((code, res["error"]), (503, "unavailable: node is shutting down"))

    def test_internal_error_is_500_and_logged(self) -> None:
        self.node.failure = ZeroDivisionError("boom")
        code, res = self.call("GET", "/config")
        self.assertEqual(code, 500)
        self.assertIn("ZeroDivisionError", res["error"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_status(self) -> None:
        code, st = self.call("GET", "/status")
        self.assertEqual(code, 200)
        self.assertEqual(
            st,
            {
                "id": 0,
                "role": "follower",
                "term": 4,
                "leader": 1,
                "leader_addr": "127.0.0.1:8189",
                "commit_index": 10,
                "applied_index": 9,
                "members": [
                    {"id": 0, "addr": "127.0.0.1:8188", "role": "voter"},
                    {"id": 1, "addr": "127.0.0.1:8189", "role": "voter"},
                    {"id": 2, "addr": "127.0.0.1:8190", "role": "voter"},
                ],
            },
        )
        self.node.raw.st.update(leader=-1, role="candidate")
        code, st = self.call("GET", "/status")
        self.assertEqual((st["leader"], st["leader_addr"], st["role"]), (None, "", "candidate"))
        self.node.raw = None
        self.assertEqual(self.call("GET", "/status")[0], 503)


class AdminAPIOverRaftNodeTests(unittest.TestCase):
    """The resource over a real one-node RaftNode driven by a Clock."""

    def test_write_and_read_through_raft(self) -> None:
        clock = task.Clock()
        storage = LevelDBStorage.in_memory(ConfState((0,)))
        app = MetaApplication(storage)
        node = RaftNode(0, storage, app, clock, config=Config(0), rng=random.Random(1))
        node.startService()
        self.addCleanup(node.stopService)
        http: Any = StubTreq(AdminAPI(node, app, lambda: {0: "127.0.0.1:8188"}))

        def settle(d: defer.Deferred[Any]) -> Any:
            for _ in range(50):
                clock.advance(0.02)
                http.flush()
            return self.successResultOf(d)

        settle(defer.succeed(None))
        r = settle(http.post(URL + "/join", json={"group": 5, "servers": ["h:1"]}))
        self.assertEqual(r.code, 200)
        self.assertEqual(settle(http.json_content(r))["config"]["num"], 1)
        r = settle(http.get(URL + "/config"))
        self.assertEqual(settle(http.json_content(r))["ranges"], [[0, 16383, 5]])
        r = settle(http.get(URL + "/status"))
        st = settle(http.json_content(r))
        self.assertEqual((st["role"], st["leader"], st["members"][0]["lag"]), ("leader", 0, 0))
