"""Reads and writes of the cluster config through Raft, for every front end
(the HTTP admin API, the AMP commands kv nodes use)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, cast

from twisted.internet import defer

from .app import MetaApplication, encode_op
from .config import ClusterConfig, OpResult, UnknownConfig, error_for_status, validate_op

T = TypeVar("T")


class StatusSource(Protocol):
    """The Raft core as ``GET /status`` reads it."""

    def status(self) -> Mapping[str, Any]: ...


class MetaNode(Protocol):
    """What the meta front ends need from the Raft node (a :class:`RaftNode`)."""

    node_id: int

    @property
    def raw(self) -> StatusSource | None: ...

    def propose(self, data: bytes) -> defer.Deferred[object]: ...

    def read(self, fn: Callable[[], T]) -> defer.Deferred[T]: ...


class MetaAPI:
    """Linearizable queries and replicated operations on the config history."""

    def __init__(self, node: MetaNode, app: MetaApplication) -> None:
        self.node = node
        self.app = app

    def config(self, num: int = -1) -> defer.Deferred[ClusterConfig]:
        """Config ``num`` (-1: the latest) once linearizable; fails with
        UnknownConfig, or RaftUnavailable/RaftTimeout."""
        if num < -1:
            return defer.fail(UnknownConfig(f"no config {num}"))
        return self.node.read(lambda: self.app.history.query(num))

    def submit(self, name: str, *args: object) -> defer.Deferred[OpResult]:
        """Run a meta operation (``"join", group, servers`` ...) through the log.

        Fires with ``{"config": ..., "changed": bool, "moved": n}``; fails
        with the MetaError the state machine decided on, or RaftUnavailable.
        Malformed input is refused before anything is proposed; conflicts
        are left to the state machine, as this node's config may be stale.
        """
        try:
            validate_op([name, *args])
        except Exception:
            return defer.fail()
        return self.node.propose(encode_op(name, *args)).addCallback(_op_result)


def _op_result(result: object) -> OpResult:
    if isinstance(result, dict) and "error" in result:
        raise error_for_status(int(result.get("status", 400)), str(result["error"]))
    if not isinstance(result, dict):
        raise TypeError(f"unexpected meta result {result!r}")
    return cast(OpResult, result)
