"""The group commands' side: RAFT.* admin commands to a shard group's kv
nodes over :mod:`eraft_twisted.resp.client`, tried on the group's servers
in turn."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypedDict, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from ..resp.client import (
    ConnectionGone,
    Connector,
    ReplyError,
    RespClientPool,
    RespReply,
    parse_info,
)
from .clock import global_reactor, sleep
from .errors import CtlError, describe_connect_error, unwrap

DEFAULT_TIMEOUT = 10.0
CONNECT_TIMEOUT = 3.0

T = TypeVar("T")

GroupResult = dict[str, Any]
"""What a group command found out, as JSON-ready data."""


class ServerUnreachable(Exception):
    """No connection could be made to a kv server: nothing was sent."""


class NoAnswer(Exception):
    """A command was sent but its reply did not come in time."""


class KVClient:
    """RESP commands to kv nodes, over a :class:`RespClientPool` (one
    connection per server, opened on first use).

    ``connect(address)`` (a Deferred firing with a connected protocol) is
    there for tests; by default it is a TCP connection on ``reactor``.
    """

    def __init__(
        self,
        reactor: IReactorTime | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect: Connector | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.reactor = reactor if reactor is not None else global_reactor()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._pool = RespClientPool(self.reactor, connect=connect, connect_timeout=connect_timeout)

    async def call(self, address: str, *argv: str | int, timeout: float | None = None) -> RespReply:
        """The reply to one command on ``address``.

        Raises :class:`ServerUnreachable` (nothing sent), :class:`ReplyError`
        (an error reply), :class:`NoAnswer` (no reply within the timeout) or
        :class:`ConnectionGone` (the connection dropped before the reply).
        """
        limit = timeout if timeout is not None else self.timeout
        connecting = self._pool.connection(address)
        wait = min(self.connect_timeout, limit) if limit else self.connect_timeout
        if wait:
            connecting.addTimeout(wait, self.reactor)
        try:
            conn = await connecting
        except Exception as e:
            raise ServerUnreachable(f"{address}: {describe_connect_error(unwrap(e))}") from None
        reply = conn.call(*argv)
        if limit:
            reply.addTimeout(limit, self.reactor)
        try:
            return await reply
        except defer.TimeoutError:
            raise NoAnswer(f"{address} did not answer within {limit:g}s") from None

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()


class RaftSummary(TypedDict):
    """The parts of a RAFT.INFO reply eraftctl shows."""

    node_id: int | None
    role: str
    term: int | None
    leader: int | None
    leader_addr: str
    commit_index: int | None
    applied_index: int | None
    voters: list[int]
    learners: list[int]
    members: list[dict[str, int | str]]


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _ids(text: str | None) -> list[int]:
    return [int(x) for x in (text or "").split(",") if x.strip().isdigit()]


def raft_summary(info: dict[str, str]) -> RaftSummary:
    """The parts of a RAFT.INFO reply eraftctl shows, as plain data."""
    members = []
    for key in sorted(
        (k for k in info if k.startswith("raft_member")), key=lambda k: _int(k[11:]) or 0
    ):
        m: dict[str, int | str] = {}
        for item in info[key].split(","):
            k, _, v = item.partition("=")
            m[k] = int(v) if v.isdigit() else v
        members.append(m)
    return {
        "node_id": _int(info.get("raft_node_id")),
        "role": info.get("raft_role", "?"),
        "term": _int(info.get("raft_term")),
        "leader": _int(info.get("raft_leader_id")),
        "leader_addr": info.get("raft_leader_addr", ""),
        "commit_index": _int(info.get("raft_commit_index")),
        "applied_index": _int(info.get("raft_applied_index")),
        "voters": _ids(info.get("raft_voters")),
        "learners": _ids(info.get("raft_learners")),
        "members": members,
    }


async def _raft_info(kv: KVClient, address: str, timeout: float | None = None) -> RaftSummary:
    return raft_summary(parse_info(await kv.call(address, "RAFT.INFO", timeout=timeout)))


async def _on_a_server(
    servers: Sequence[str], label: str, attempt: Callable[[str], Awaitable[T]]
) -> T:
    """``attempt(address)`` on each server in turn, moving on only when the
    connection could not be made; other failures become one-line CtlErrors."""
    problems = []
    for address in servers:
        try:
            return await attempt(address)
        except ServerUnreachable as e:
            problems.append(str(e))
        except ReplyError as e:
            raise CtlError(f"{address} replied: {e}") from None
        except NoAnswer as e:
            raise CtlError(f"{e} (the change may still be applied)") from None
        except ConnectionGone as e:
            raise CtlError(f"{address}: {e} (the change may still be applied)") from None
    raise CtlError(f"cannot reach any server of {label} (" + "; ".join(problems) + ")")


async def _poll_info(
    kv: KVClient,
    address: str,
    done: Callable[[RaftSummary], bool],
    clock: IReactorTime,
    seconds: float = 3.0,
    interval: float = 0.1,
) -> tuple[RaftSummary | None, bool]:
    """RAFT.INFO of ``address`` until ``done`` says so (or ``seconds`` pass):
    (the last answer or None, whether ``done`` held)."""
    info = None
    for i in range(max(1, int(seconds / interval))):
        if i:
            await sleep(clock, interval)
        try:
            info = await _raft_info(kv, address)
        except Exception:
            return info, False
        if done(info):
            return info, True
    return info, False


def _text(reply: object) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


async def transfer_leader(
    kv: KVClient, servers: Sequence[str], label: str, target: int | None, clock: IReactorTime
) -> GroupResult:
    """RAFT.TRANSFER_LEADER on the group, then who leads now."""

    async def attempt(address: str) -> GroupResult:
        before = await _raft_info(kv, address)
        reply = await kv.call(
            address, "RAFT.TRANSFER_LEADER", *([target] if target is not None else [])
        )
        old = before["leader"]

        def moved(info: RaftSummary) -> bool:
            if target is not None:
                return bool(info["leader"] == target)
            return info["leader"] not in (None, old)

        if old is not None and old == target:
            now: RaftSummary | None = before  # already the leader: nothing moved
        else:
            info, settled = await _poll_info(kv, address, moved, clock)
            now = info if settled else None
        return {
            "server": address,
            "reply": _text(reply),
            "previous_leader": old,
            "leader": now["leader"] if now else None,
            "leader_addr": now["leader_addr"] if now else "",
            "term": now["term"] if now else None,
        }

    return await _on_a_server(servers, label, attempt)


async def change_member(
    kv: KVClient,
    servers: Sequence[str],
    label: str,
    node_id: int,
    peer: str | None,
    clock: IReactorTime,
) -> GroupResult:
    """RAFT.NODE ADD (``peer`` given) or REMOVE on the group, then its members."""

    async def attempt(address: str) -> GroupResult:
        if peer is not None:
            reply = await kv.call(address, "RAFT.NODE", "ADD", node_id, peer)
        else:
            reply = await kv.call(address, "RAFT.NODE", "REMOVE", node_id)

        def visible(info: RaftSummary) -> bool:
            present = node_id in info["voters"] or node_id in info["learners"]
            return present if peer is not None else not present

        info, settled = await _poll_info(kv, address, visible, clock)
        result: GroupResult = {"server": address, "reply": _text(reply), "node_id": node_id}
        if peer is not None:
            result["peer"] = peer
        if info is not None and settled:
            result["voters"], result["learners"] = info["voters"], info["learners"]
        return result

    return await _on_a_server(servers, label, attempt)


async def group_leader(
    kv: KVClient, group: int | None, servers: Sequence[str], timeout: float
) -> GroupResult:
    """RAFT.INFO from the first server of a group that answers within
    ``timeout``; ``{"error": "unreachable"}`` when none does."""
    problems = []
    for address in servers:
        try:
            info = await _raft_info(kv, address, timeout=timeout)
        except (ServerUnreachable, NoAnswer) as e:
            problems.append(str(e))
            continue
        except Exception as e:
            problems.append(f"{address}: {e}")
            continue
        return {"group": group, "server": address, **info}
    return {"group": group, "error": "unreachable", "problems": problems}
