"""The meta group's HTTP admin API (twisted.web, JSON).

=========================  ==================================================
``GET /config``            the latest config
``GET /config/<n>``        config ``n`` (404 if there is none)
``POST /join``             ``{"group": 1, "servers": ["host:port", ...]}``
``POST /leave``            ``{"group": 1}``
``POST /move``             ``{"lo": 0, "hi": 99, "group": 2}``
``POST /rebalance``        (no body)
``GET /status``            this node's cluster id, raft role, term, leader
                           and members
=========================  ==================================================

Writes go through :meth:`RaftNode.propose` (a follower forwards them to the
leader), reads through :meth:`RaftNode.read` (linearizable on any node).
Errors are ``{"error": message}`` with 400 (bad input), 404 (unknown config
or path), 405 (wrong method), 409 (conflict, e.g. unknown group) or 503 (no
leader, no quorum, timeout).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ..node.errors import RaftTimeout, RaftUnavailable
from ..raft.types import NONE
from ..resp.client import RespClientPool, parse_info
from ..rpc.identity import Identity
from .api import MetaAPI, MetaNode
from .app import MetaApplication
from .config import MetaError, OpResult

log = Logger()

MAX_BODY = 64 * 1024


class HTTPError(Exception):
    """An error answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def node_status(
    node: MetaNode, addresses: dict[int, str], identity: Identity | None = None
) -> dict[str, object]:
    """This node's cluster id and raft state as plain data (``GET /status``)."""
    if node.raw is None:
        raise HTTPError(503, "raft node not started")
    st = node.raw.status()
    leader = st["leader"]
    voters, learners = set(st["voters"]), set(st["learners"])
    members = []
    for nid in sorted(voters | learners):
        member: dict[str, object] = {
            "id": nid,
            "addr": addresses.get(nid, ""),
            "role": "voter" if nid in voters else "learner",
        }
        pr = st["progress"].get(nid)
        if pr is not None:
            member["match"] = pr["match"]
            member["lag"] = max(0, st["last_index"] - pr["match"])
        members.append(member)
    status: dict[str, object] = {} if identity is None else {"cluster_id": identity.cluster_id}
    return {
        **status,
        "id": st["id"],
        "role": st["role"],
        "term": st["term"],
        "leader": None if leader == NONE else leader,
        "leader_addr": addresses.get(leader, "") if leader != NONE else "",
        "commit_index": st["commit_index"],
        "applied_index": st["applied_index"],
        "members": members,
    }


def _json_body(request: Request) -> dict[str, object]:
    assert request.content is not None
    raw = request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise HTTPError(413, f"request body over {MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise HTTPError(400, f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise HTTPError(400, "request body must be a JSON object")
    return body


def _field(body: dict[str, object], name: str) -> object:
    if name not in body:
        raise HTTPError(400, f"missing field {name!r}")
    return body[name]


def _kv_pairs(text: str) -> dict[str, int | str]:
    pairs: dict[str, int | str] = {}
    for item in text.split(","):
        k, _, v = item.partition("=")
        pairs[k] = int(v) if v.isdigit() else v
    return pairs


class AdminAPI(Resource):
    """The root resource of the admin site."""

    isLeaf = True

    def __init__(
        self,
        node: MetaNode,
        app: MetaApplication,
        addresses: Callable[[], dict[int, str]],
        identity: Identity | None = None,
    ) -> None:
        super().__init__()
        self.node = node
        self.api = MetaAPI(node, app)
        self.addresses = addresses
        self.identity = identity
        self._pool: RespClientPool | None = None

    # -- routing -------------------------------------------------------------------
    def render(self, request: Request) -> int:
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))
        d = defer.maybeDeferred(self._dispatch, request)

        def reply(result: object) -> None:
            if not finished[0]:
                self._write(request, 200, result)

        def failed(f: Failure) -> None:
            if not finished[0]:
                status, message, headers = self._describe(f)
                for k, v in headers.items():
                    request.setHeader(k, v)
                self._write(request, status, {"error": message})

        d.addCallbacks(reply, failed)
        d.addErrback(lambda f: log.failure("writing an admin reply failed", f))
        return NOT_DONE_YET

    def _dispatch(self, request: Request) -> object:
        method = (request.method or b"GET").decode("latin-1")
        parts = [p.decode("utf-8", "replace") for p in request.postpath or [] if p]
        if parts == ["config"] or (len(parts) == 2 and parts[0] == "config"):
            self._allow(method, "GET")
            num = self._config_num(parts[1]) if len(parts) == 2 else -1
            return self.api.config(num).addCallback(lambda cfg: cfg.to_dict())
        if parts == ["status"]:
            self._allow(method, "GET")
            return node_status(self.node, self.addresses(), self.identity)
        if parts == ["migrations"]:
            self._allow(method, "GET")
            return self._migrations()
        if len(parts) == 1 and parts[0] in ("join", "leave", "move", "rebalance"):
            self._allow(method, "POST")
            return self._write_op(parts[0], _json_body(request))
        raise HTTPError(404, f"no such endpoint: {method} /{'/'.join(parts)}")

    @staticmethod
    def _allow(method: str, allowed: str) -> None:
        if method != allowed:
            raise HTTPError(405, f"use {allowed}", {"Allow": allowed})

    @staticmethod
    def _config_num(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise HTTPError(400, f"config number must be an integer, got {text!r}") from None

    # -- migrations in flight --------------------------------------------------------
    @defer.inlineCallbacks
    def _migrations(self) -> Generator[defer.Deferred[Any], Any, dict[str, object]]:
        """Ask every group of the latest config how far it is (``INFO sharding``)."""
        cfg = (yield self.api.config(-1)).to_dict()
        if self._pool is None:
            from twisted.internet import reactor

            self._pool = RespClientPool(reactor, timeout=3.0)
        groups = []
        for gid, servers in sorted(cfg["groups"].items(), key=lambda kv: int(kv[0])):
            groups.append((yield self._group_progress(int(gid), list(servers))))
        in_flight = [
            g for g in groups
            if g.get("config", -1) < cfg["num"] or g.get("incoming") or g.get("release_pending")
        ]  # fmt: skip
        return {"num": cfg["num"], "groups": groups, "in_flight": len(in_flight)}

    @defer.inlineCallbacks
    def _group_progress(
        self, gid: int, servers: list[str]
    ) -> Generator[defer.Deferred[Any], Any, dict[str, object]]:
        """The group's INFO sharding, from its leader if one answers (only
        the leader knows how far its copies are)."""
        assert self._pool is not None
        found: tuple[str, dict[str, str]] | None = None
        for address in servers:
            try:
                text = yield self._pool.call(address, "INFO", "sharding")
            except Exception:
                continue
            info = parse_info(text)
            if found is None or info.get("shard_leader") == "1":
                found = (address, info)
            if info.get("shard_leader") == "1":
                break
        if found is None:
            return {"group": gid, "error": "no server answered"}
        address, info = found
        copies = [
            {"slots": k[len("migration_") :].replace("_", "-"), **_kv_pairs(v)}
            for k, v in info.items()
            if k.startswith("migration_")
        ]
        return {
            "group": gid,
            "server": address,
            "config": int(info.get("shard_config", 0)),
            "incoming": info.get("shard_incoming", ""),
            "outgoing": info.get("shard_outgoing", ""),
            "release_pending": info.get("shard_release_pending", ""),
            "copying": copies,
        }

    # -- writes ------------------------------------------------------------------------
    def _write_op(self, name: str, body: dict[str, object]) -> defer.Deferred[OpResult]:
        fields = {"join": ("group", "servers"), "leave": ("group",), "move": ("lo", "hi", "group")}
        return self.api.submit(name, *(_field(body, f) for f in fields.get(name, ())))

    # -- replies ---------------------------------------------------------------------------
    @staticmethod
    def _describe(f: Failure) -> tuple[int, str, dict[str, str]]:
        e = f.value
        if isinstance(e, HTTPError):
            return e.status, str(e), e.headers
        if isinstance(e, MetaError):
            return e.status, str(e), {}
        if isinstance(e, RaftTimeout):
            return 503, f"timeout: {e}", {}
        if isinstance(e, RaftUnavailable):
            return 503, f"unavailable: {e}", {}
        log.failure("admin request failed", f)
        return 500, f"internal error: {e.__class__.__name__}: {e}", {}

    @staticmethod
    def _write(request: Request, status: int, body: object) -> None:
        data = json.dumps(body, sort_keys=True).encode() + b"\n"
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-length", str(len(data)).encode())
        request.write(data)
        request.finish()
