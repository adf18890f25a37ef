"""``eraftctl``: the cluster's admin command line, over the meta HTTP API
and the kv nodes' RESP admin commands.

    eraftctl [--meta URL[,URL...]] [--server HOST:PORT[,...]] [--json] [--timeout S] COMMAND
      status                      the meta node's raft state, each group's leader, the config
      config [N]                  config N (default: the latest)
      join GROUP SERVER...        add a shard group (or update its servers)
      leave GROUP                 remove a group; its slots go to the others
      move LO HI GROUP            give slots LO..HI to GROUP
      rebalance                   spread the slots evenly, moving as few as possible
      migrations                  how far every group is with moving data
      transfer-leader GROUP [NODE_ID]
                                  hand GROUP's leadership to NODE_ID (default: the
                                  most up-to-date follower)
      add-node GROUP NODE_ID PEER_HOST:PORT
                                  add a node to GROUP as a learner (promoted to voter
                                  once caught up); PEER is its raft peer address
      remove-node GROUP NODE_ID   remove a node from GROUP

``join``/``leave``/``move``/``rebalance`` wait until the data has moved,
showing a progress bar (slot ranges done, keys and bytes copied): redrawn
while it runs when stdout is a terminal, printed once at the end otherwise,
never with ``--json``; ``--no-wait`` returns once the config is committed.
``status`` asks one server of every group for ``RAFT.INFO``, giving each
server at most 2 seconds; a group none answers shows as ``unreachable``.

The group commands look GROUP's servers (their RESP ``host:port``) up in
the latest config and send ``RAFT.TRANSFER_LEADER`` / ``RAFT.NODE ADD`` /
``RAFT.NODE REMOVE`` to them in turn (the next one only when a connection
cannot be made; any node forwards to the leader). With ``--server
HOST:PORT[,HOST:PORT...]`` they talk to those servers instead and take no
GROUP argument, which is how to administer a single unsharded group that
has no meta group::

    eraftctl --server 127.0.0.1:6379 transfer-leader [NODE_ID]
    eraftctl --server 127.0.0.1:6379 add-node NODE_ID PEER_HOST:PORT
    eraftctl --server 127.0.0.1:6379 remove-node NODE_ID
    eraftctl --server 127.0.0.1:6379 status

Output is readable tables, or JSON with ``--json``. On failure it prints
one line on stderr and exits 1 (2 for bad usage). With several ``--meta``
URLs, the next one is tried when a server cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TextIO, TypeVar

from twisted.internet import defer, error, task
from twisted.internet.interfaces import IReactorTime

from .resp.client import ConnectionGone, ReplyError, RespClientProtocol, parse_info

DEFAULT_META = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 10.0
CONNECT_TIMEOUT = 3.0
STATUS_SERVER_TIMEOUT = 2.0
"""``status`` gives each kv server at most this long (connect and reply)."""
NSLOTS = 16384

T = TypeVar("T")


class CtlError(Exception):
    """A failure reported to the user as one line."""


def _global_reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _sleep(clock: IReactorTime, seconds: float) -> defer.Deferred[None]:
    return task.deferLater(clock, seconds, lambda: None)


# -- talking to the meta server --------------------------------------------------------------


def _describe_connect_error(e: BaseException) -> str:
    if isinstance(e, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, error.DNSLookupError):
        return "unknown host"
    if isinstance(e, error.TimeoutError | error.TCPTimedOutError | defer.TimeoutError):
        return "connection timed out"
    text = str(e).strip().rstrip(".")
    return text or e.__class__.__name__


def _unwrap(e: BaseException) -> BaseException:
    # treq/twisted.web wrap the real cause in ResponseNeverReceived & co.
    reasons = getattr(e, "reasons", None)
    if reasons:
        return _unwrap(reasons[0].value)
    return e


class MetaClient:
    """JSON requests to the first reachable meta server of ``urls``."""

    def __init__(self, urls: Sequence[str], http: Any = None, timeout: float | None = None):
        if http is None:
            import treq

            http = treq
        self.urls = [u.rstrip("/") for u in urls]
        self.http = http
        self.timeout = timeout

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON reply; raises CtlError on any failure."""
        problems = []
        for base in self.urls:
            kw: dict[str, Any] = {}
            if body is not None:
                kw["json"] = body
            if self.timeout:
                kw["timeout"] = self.timeout
            try:
                response = await self.http.request(method, base + path, **kw)
                data = await self.http.content(response)
            except defer.CancelledError:
                raise CtlError(
                    f"{base} did not answer within {self.timeout:g}s"
                    + (" (the change may still be applied)" if method != "GET" else "")
                ) from None
            except Exception as e:
                cause = _unwrap(e)
                if isinstance(cause, defer.CancelledError):
                    raise CtlError(f"{base} did not answer within {self.timeout:g}s") from None
                if isinstance(cause, error.ConnectError | error.DNSLookupError):
                    # Nothing was sent: the next server may take it.
                    problems.append(f"{base}: {_describe_connect_error(cause)}")
                    continue
                raise CtlError(f"request to {base} failed: {_describe_connect_error(cause)}") from e
            return self._decode(base, response.code, data)
        if len(problems) == 1:
            raise CtlError(f"cannot reach the meta server {problems[0]}")
        raise CtlError("cannot reach any meta server (" + "; ".join(problems) + ")")

    @staticmethod
    def _decode(base: str, code: int, data: bytes) -> Any:
        try:
            payload = json.loads(data)
        except ValueError:
            first = data.decode("utf-8", "replace").strip().splitlines()
            raise CtlError(
                f"{base} answered HTTP {code} with a non-JSON body: "
                f"{first[0][:200] if first else '(empty)'}"
            ) from None
        if code >= 400:
            message = payload.get("error") if isinstance(payload, dict) else None
            raise CtlError(f"{message or 'request failed'} (HTTP {code})")
        return payload


# -- talking to the kv nodes (RESP) ----------------------------------------------------------


class ServerUnreachable(Exception):
    """No connection could be made to a kv server: nothing was sent."""


class NoAnswer(Exception):
    """A command was sent but its reply did not come in time."""


class KVClient:
    """RESP commands to kv nodes over :class:`RespClientProtocol`, one
    connection per server, opened on first use.

    ``connect(address)`` (a Deferred firing with a connected protocol) is
    there for tests; by default it is a TCP connection on ``reactor``.
    """

    def __init__(
        self,
        reactor: Any = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect: Callable[[str], defer.Deferred[Any]] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.reactor = reactor if reactor is not None else _global_reactor()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._connect = connect or self._tcp_connect
        self._conns: dict[str, Any] = {}

    def _tcp_connect(self, address: str) -> defer.Deferred[Any]:
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        host, _, port = address.rpartition(":")
        endpoint = TCP4ClientEndpoint(self.reactor, host, int(port), timeout=self.connect_timeout)
        d: defer.Deferred[Any] = connectProtocol(endpoint, RespClientProtocol())
        return d

    async def call(self, address: str, *argv: str | int, timeout: float | None = None) -> Any:
        """The reply to one command on ``address``.

        Raises :class:`ServerUnreachable` (nothing sent), :class:`ReplyError`
        (an error reply), :class:`NoAnswer` (no reply within the timeout) or
        :class:`ConnectionGone` (the connection dropped before the reply).
        """
        limit = timeout if timeout is not None else self.timeout
        conn = self._conns.get(address)
        if conn is None or not getattr(conn, "connected_", True):
            d = self._connect(address)
            wait = min(self.connect_timeout, limit) if limit else self.connect_timeout
            if wait:
                d.addTimeout(wait, self.reactor)
            try:
                conn = await d
            except Exception as e:
                raise ServerUnreachable(
                    f"{address}: {_describe_connect_error(_unwrap(e))}"
                ) from None
            self._conns[address] = conn
        reply = conn.call(*argv)
        if limit:
            reply.addTimeout(limit, self.reactor)
        try:
            return await reply
        except defer.TimeoutError:
            raise NoAnswer(f"{address} did not answer within {limit:g}s") from None

    def close(self) -> None:
        """Close every connection."""
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _ids(text: str | None) -> list[int]:
    return [int(x) for x in (text or "").split(",") if x.strip().isdigit()]


def raft_summary(info: dict[str, str]) -> dict[str, Any]:
    """The parts of a RAFT.INFO reply eraftctl shows, as plain data."""
    members = []
    for key in sorted(
        (k for k in info if k.startswith("raft_member")), key=lambda k: _int(k[11:]) or 0
    ):
        m: dict[str, Any] = {}
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


async def _raft_info(kv: KVClient, address: str, timeout: float | None = None) -> dict[str, Any]:
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
    done: Callable[[dict[str, Any]], bool],
    clock: IReactorTime,
    seconds: float = 3.0,
    interval: float = 0.1,
) -> tuple[dict[str, Any] | None, bool]:
    """RAFT.INFO of ``address`` until ``done`` says so (or ``seconds`` pass):
    (the last answer or None, whether ``done`` held)."""
    info = None
    for i in range(max(1, int(seconds / interval))):
        if i:
            await _sleep(clock, interval)
        try:
            info = await _raft_info(kv, address)
        except Exception:
            return info, False
        if done(info):
            return info, True
    return info, False


async def transfer_leader(
    kv: KVClient, servers: Sequence[str], label: str, target: int | None, clock: IReactorTime
) -> dict[str, Any]:
    """RAFT.TRANSFER_LEADER on the group, then who leads now."""

    async def attempt(address: str) -> dict[str, Any]:
        before = await _raft_info(kv, address)
        reply = await kv.call(
            address, "RAFT.TRANSFER_LEADER", *([target] if target is not None else [])
        )
        old = before["leader"]

        def moved(info: dict[str, Any]) -> bool:
            if target is not None:
                return bool(info["leader"] == target)
            return info["leader"] not in (None, old)

        if old is not None and old == target:
            now: dict[str, Any] | None = before  # already the leader: nothing moved
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
) -> dict[str, Any]:
    """RAFT.NODE ADD (``peer`` given) or REMOVE on the group, then its members."""

    async def attempt(address: str) -> dict[str, Any]:
        if peer is not None:
            reply = await kv.call(address, "RAFT.NODE", "ADD", node_id, peer)
        else:
            reply = await kv.call(address, "RAFT.NODE", "REMOVE", node_id)

        def visible(info: dict[str, Any]) -> bool:
            present = node_id in info["voters"] or node_id in info["learners"]
            return present if peer is not None else not present

        info, settled = await _poll_info(kv, address, visible, clock)
        result: dict[str, Any] = {"server": address, "reply": _text(reply), "node_id": node_id}
        if peer is not None:
            result["peer"] = peer
        if info is not None and settled:
            result["voters"], result["learners"] = info["voters"], info["learners"]
        return result

    return await _on_a_server(servers, label, attempt)


async def group_leader(
    kv: KVClient, group: int | None, servers: Sequence[str], timeout: float
) -> dict[str, Any]:
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


def _text(reply: Any) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


# -- formatting -------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def format_config(cfg: dict[str, Any]) -> str:
    """A config as text: summary, groups, slot ranges, migrations."""
    counts: dict[str, int] = {gid: 0 for gid in cfg["groups"]}
    nranges: dict[str, int] = {gid: 0 for gid in cfg["groups"]}
    owned = 0
    for lo, hi, gid in cfg["ranges"]:
        if gid:
            counts[str(gid)] = counts.get(str(gid), 0) + hi - lo + 1
            nranges[str(gid)] = nranges.get(str(gid), 0) + 1
            owned += hi - lo + 1
    ngroups = len(cfg["groups"])
    lines = [
        f"config {cfg['num']}: {ngroups} group{'' if ngroups == 1 else 's'}, "
        f"{owned} of 16384 slots owned",
        "",
    ]
    if cfg["groups"]:
        rows = [
            (gid, counts[gid], nranges[gid], ",".join(servers))
            for gid, servers in sorted(cfg["groups"].items(), key=lambda kv: int(kv[0]))
        ]
        lines += [table(["GROUP", "SLOTS", "RANGES", "SERVERS"], rows), ""]
    rows2 = [
        (f"{lo}-{hi}" if lo != hi else str(lo), hi - lo + 1, gid if gid else "(unowned)")
        for lo, hi, gid in cfg["ranges"]
    ]
    lines += [table(["RANGE", "SLOTS", "GROUP"], rows2), ""]
    migrations = cfg.get("migrations") or []
    if not migrations:
        lines.append("migrations in flight: none")
    else:
        lines.append("migrations in flight:")
        for m in migrations:
            items = m.items() if isinstance(m, dict) else [("", m)]
            lines.append("  " + " ".join(f"{k}={v}" for k, v in items))
    return "\n".join(lines)


def format_status(status: dict[str, Any]) -> str:
    """The meta node's raft state as text."""
    leader = status.get("leader")
    where = f"node {leader} at {status.get('leader_addr') or '?'}" if leader is not None else "none"
    cluster = f" of cluster {status['cluster_id']}" if status.get("cluster_id") else ""
    lines = [
        f"meta node {status['id']}{cluster}: {status['role']}, term {status['term']}, "
        f"leader {where}",
        f"commit index {status['commit_index']}, applied index {status['applied_index']}",
        "",
    ]
    rows = []
    for m in status.get("members", []):
        notes = []
        if m["id"] == leader:
            notes.append("leader")
        if m["id"] == status["id"]:
            notes.append("this node")
        if "lag" in m and m["id"] != status["id"]:
            notes.append(f"lag {m['lag']}")
        rows.append((m["id"], m.get("addr", ""), m["role"], ", ".join(notes)))
    lines.append(table(["ID", "ADDRESS", "ROLE", "NOTES"], rows))
    return "\n".join(lines)


def _who(node: int | None, addr: str) -> str:
    if node is None:
        return "none"
    return f"node {node} ({addr})" if addr else f"node {node}"


def format_leaders(groups: Sequence[dict[str, Any]]) -> str:
    """One line per shard group: its leader, term and applied index (as
    told by the server that answered)."""
    rows = []
    for g in groups:
        gid = "-" if g["group"] is None else g["group"]
        if "error" in g:
            rows.append([gid, g["error"], "-", "-", "-"])
        else:
            leader = _who(g["leader"], g["leader_addr"])
            rows.append([gid, leader, g["term"], g["applied_index"], g["server"]])
    return table(["GROUP", "LEADER", "TERM", "APPLIED", "ASKED"], rows)


def format_members(info: dict[str, Any]) -> str:
    """The members of a group as seen by one of its nodes."""
    rows = []
    for m in info["members"]:
        notes = []
        if m.get("id") == info["leader"]:
            notes.append("leader")
        if m.get("self") == "yes":
            notes.append("answered")
        if "lag" in m and m.get("self") != "yes":
            notes.append(f"lag {m['lag']}")
        rows.append((m.get("id", "?"), m.get("addr", ""), m.get("role", "?"), ", ".join(notes)))
    return table(["ID", "ADDRESS", "ROLE", "NOTES"], rows)


def _members_line(result: dict[str, Any]) -> str:
    if "voters" not in result:
        return f"(the change is not visible on {result['server']} yet)"
    voters = ",".join(map(str, result["voters"])) or "none"
    learners = ",".join(map(str, result["learners"])) or "none"
    return f"members now: voters {voters}; learners {learners}"


def format_transfer(label: str, r: dict[str, Any]) -> str:
    """The outcome of transfer-leader as one line."""
    old, new = r["previous_leader"], r["leader"]
    if new is None:
        return (
            f"{label}: leadership transfer done ({r['reply']}); "
            f"{r['server']} does not know the new leader yet"
        )
    if new == old:
        return f"{label}: {_who(new, r['leader_addr'])} already leads, term {r['term']}"
    src = f" from node {old}" if old is not None else ""
    return f"{label}: leadership moved{src} to {_who(new, r['leader_addr'])}, term {r['term']}"


def _change_summary(what: str, result: dict[str, Any]) -> str:
    num = result["config"]["num"]
    if not result.get("changed"):
        return f"no change: config {num} already {what}"
    moved = result.get("moved", 0)
    return f"config {num}: {what}; {moved} slot{'' if moved == 1 else 's'} changed owner"


def format_migrations(report: dict[str, Any]) -> str:
    """A table of every group's progress towards the latest config."""
    rows = []
    for g in report["groups"]:
        if "error" in g:
            rows.append([g["group"], "?", g["error"], "", ""])
            continue
        copying = "; ".join(
            f"{c['slots']}: {c.get('keys', 0)} keys, {c.get('bytes', 0)} B"
            + (" (done)" if c.get("done") else "")
            for c in g["copying"]
        )
        rows.append(
            [g["group"], g["config"], g["incoming"] or "-", g["release_pending"] or "-",
             copying or "-"]
        )  # fmt: skip
    head = f"latest config {report['num']}; groups still moving data: {report['in_flight']}"
    return head + "\n\n" + table(["GROUP", "APPLIED", "INCOMING", "TO RELEASE", "COPYING"], rows)


# -- migration progress -----------------------------------------------------------------------


def slot_owners(cfg: dict[str, Any]) -> list[int]:
    """The owning group of every slot in a config (0: unowned)."""
    owners = [0] * NSLOTS
    for lo, hi, gid in cfg["ranges"]:
        owners[lo : hi + 1] = [int(gid or 0)] * (hi - lo + 1)
    return owners


def changed_ranges(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """``(lo, hi, from_group, to_group)`` runs of slots whose owner differs
    between two configs."""
    a, b = slot_owners(old), slot_owners(new)
    out: list[tuple[int, int, int, int]] = []
    for s in range(NSLOTS):
        if a[s] == b[s]:
            continue
        if out and out[-1][1] == s - 1 and out[-1][2:] == (a[s], b[s]):
            out[-1] = (out[-1][0], s, a[s], b[s])
        else:
            out.append((s, s, a[s], b[s]))
    return out


def _slot_runs(text: str) -> list[tuple[int, int]]:
    """``lo-hi`` spans of an INFO ``shard_incoming`` value (``0-99:g1@3,...``)."""
    spans = []
    for item in text.split(","):
        span = item.split(":", 1)[0].strip()
        if not span:
            continue
        lo, _, hi = span.partition("-")
        try:
            spans.append((int(lo), int(hi or lo)))
        except ValueError:
            continue
    return spans


def ranges_done(
    moved: Sequence[tuple[int, int, int, int]], report: dict[str, Any], num: int
) -> int:
    """How many of ``moved`` are done according to a ``GET /migrations``
    report: the new owner has applied config ``num`` and no longer lists
    any of the range as incoming. Slots given up to nobody, or to a group
    no longer in the config, have nothing to wait for."""
    groups = {int(g["group"]): g for g in report.get("groups", [])}
    done = 0
    for lo, hi, _src, dst in moved:
        g = groups.get(dst)
        if dst == 0 or g is None:
            done += 1
            continue
        if "error" in g or g.get("config", -1) < num:
            continue
        if any(a <= hi and lo <= b for a, b in _slot_runs(g.get("incoming") or "")):
            continue
        done += 1
    return done


def format_size(n: float) -> str:
    """Bytes in decimal units: ``999 B``, ``1.2 kB``, ``3.4 MB``."""
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"


def progress_bar(done: int, total: int, keys: int, size: int, width: int = 20) -> str:
    """``[#######.............] 3/8 ranges  12,345 keys  1.2 MB copied``."""
    filled = width if done >= total else int(width * done / total)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
        f"range{'' if total == 1 else 's'}  {keys:,} keys  {format_size(size)} copied"
    )


async def wait_for_data(
    client: MetaClient,
    num: int,
    out: TextIO,
    show: bool,
    clock: IReactorTime | None = None,
    interval: float = 0.5,
) -> None:
    """Poll the groups until every one applied config ``num`` and moved its
    data. With ``show``, draw a progress bar: how many of the slot ranges
    that change owner between configs num-1 and num are done, and the keys
    and bytes copied (the target's leader keeps a finished range's counts
    until it applies a newer config). It is redrawn on every poll when
    ``out`` is a terminal, else printed once at the end."""
    clock = clock if clock is not None else _global_reactor()
    moved: list[tuple[int, int, int, int]] = []
    if num > 0:
        old = await client.request("GET", f"/config/{num - 1}")
        new = await client.request("GET", f"/config/{num}")
        moved = changed_ranges(old, new)
    tty = show and bool(getattr(out, "isatty", lambda: False)())
    drawn = 0
    copied: dict[str, tuple[int, int]] = {}
    while True:
        report = await client.request("GET", "/migrations")
        unreachable = [g["group"] for g in report["groups"] if "error" in g]
        if unreachable:
            # Nothing to watch there (e.g. a group registered by hand whose
            # servers are not running yet): say so rather than hang.
            if drawn:
                out.write("\n")
                out.flush()
            sys.stderr.write(
                f"eraftctl: not waiting for the data to move: group(s) "
                f"{', '.join(map(str, unreachable))} unreachable\n"
            )
            return
        behind = [g for g in report["groups"] if g.get("config", -1) < num]
        for g in report["groups"]:
            for c in g.get("copying", []):
                if c.get("config", num) == num:
                    copied[f"{g['group']}:{c['slots']}"] = (c.get("keys", 0), c.get("bytes", 0))
        keys = sum(k for k, _ in copied.values())
        size = sum(b for _, b in copied.values())
        bar = "moving data: " + progress_bar(
            ranges_done(moved, report, num), len(moved), keys, size
        )
        finished = not report["in_flight"] and not behind
        if tty:
            out.write("\r" + bar.ljust(drawn) + ("\n" if finished else ""))
            out.flush()
            drawn = len(bar)
        elif show and finished:
            out.write(bar + "\n")
        if finished:
            return
        await _sleep(clock, interval)


# -- commands ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"eraftctl: error: {message} (see eraftctl --help)\n")


GROUP_COMMANDS = ("transfer-leader", "add-node", "remove-node")
_GROUP_ARGS = {
    # command: (arguments after GROUP, how many of them may be left out)
    "transfer-leader": (["NODE_ID"], 1),
    "add-node": (["NODE_ID", "PEER_HOST:PORT"], 0),
    "remove-node": (["NODE_ID"], 0),
}
_EPILOG = (
    "transfer-leader, add-node and remove-node find GROUP's servers in the meta config; "
    "with --server HOST:PORT[,...] they (and status) talk to those kv servers instead "
    "and take no GROUP, e.g. for a single unsharded group: "
    "eraftctl --server 127.0.0.1:6379 transfer-leader"
)


def _shown(names: Sequence[str], optional: int) -> str:
    """``NODE_ID [PEER]``: the last ``optional`` names in brackets."""
    cut = len(names) - optional
    return " ".join([*names[:cut], *(f"[{n}]" for n in names[cut:])])


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--meta",
        default=argparse.SUPPRESS,
        help=f"meta server URL(s), comma-separated (default {DEFAULT_META})",
    )
    common.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        metavar="HOST:PORT[,...]",
        help="RESP address(es) of one group's kv servers, used instead of a GROUP looked up "
        "in the meta config (status, transfer-leader, add-node, remove-node)",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help=f"seconds to wait for an answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser = _Parser(
        prog="eraftctl",
        description="Administer an eraft-twisted cluster through its meta group and kv nodes.",
        epilog=_EPILOG,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser(
        "status", parents=[common], help="meta node state, each group's leader, the latest config"
    )
    p = sub.add_parser("config", parents=[common], help="show config N (default: latest)")
    p.add_argument("num", nargs="?", type=int, default=-1, metavar="N")
    p = sub.add_parser("join", parents=[common], help="add a shard group or update its servers")
    p.add_argument("group", type=int, metavar="GROUP")
    p.add_argument("servers", nargs="+", metavar="SERVER", help="host:port of each server")
    p = sub.add_parser("leave", parents=[common], help="remove a group (its slots move first)")
    p.add_argument("group", type=int, metavar="GROUP")
    p = sub.add_parser("move", parents=[common], help="give slots LO..HI to GROUP")
    p.add_argument("lo", type=int, metavar="LO")
    p.add_argument("hi", type=int, metavar="HI")
    p.add_argument("group", type=int, metavar="GROUP")
    sub.add_parser("rebalance", parents=[common], help="spread the slots evenly over the groups")
    sub.add_parser("migrations", parents=[common], help="how far every group is with moving data")
    for name in ("join", "leave", "move", "rebalance"):
        sub.choices[name].add_argument(
            "--no-wait",
            action="store_true",
            help="return once the new config is committed, without waiting for the data to move",
        )
    helps = {
        "transfer-leader": "hand GROUP's leadership to NODE_ID (default: the most up-to-date "
        "follower)",
        "add-node": "add node NODE_ID (raft peer address PEER_HOST:PORT) to GROUP as a learner; "
        "it becomes a voter once caught up",
        "remove-node": "remove node NODE_ID from GROUP",
    }
    for name in GROUP_COMMANDS:
        shown = _shown(_GROUP_ARGS[name][0], _GROUP_ARGS[name][1])
        p = sub.add_parser(
            name,
            parents=[common],
            help=helps[name],
            description=helps[name] + ". " + _EPILOG + ".",
            usage=f"eraftctl [options] {name} GROUP {shown}\n"
            f"       eraftctl [options] --server HOST:PORT[,...] {name} {shown}",
        )
        p.add_argument("operands", nargs="*", metavar="ARG", help=argparse.SUPPRESS)
    return parser


def _address(text: str) -> str:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return text.strip()


def _number(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def _group_operands(args: argparse.Namespace) -> None:
    """Sort out ``[GROUP] NODE_ID [PEER]`` of the group commands."""
    rest, optional = _GROUP_ARGS[args.command]
    names = ([] if args.kv_servers else ["GROUP"]) + rest
    ops = list(args.operands)
    if not len(names) - optional <= len(ops) <= len(names):
        need = _shown(names, optional)
        if args.kv_servers is None and len(ops) == len(names) - optional - 1:
            raise ValueError(f"{args.command} needs {need} (or --server instead of GROUP)")
        raise ValueError(f"{args.command} takes {need}, got {len(ops)} argument(s)")
    values = dict(zip(names, ops, strict=False))
    args.group = _number("GROUP", values["GROUP"]) if "GROUP" in values else None
    args.node_id = _number("NODE_ID", values["NODE_ID"]) if "NODE_ID" in values else None
    args.peer = _address(values["PEER_HOST:PORT"]) if "PEER_HOST:PORT" in values else None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.meta = getattr(args, "meta", DEFAULT_META)
    args.json = getattr(args, "json", False)
    args.timeout = getattr(args, "timeout", DEFAULT_TIMEOUT)
    urls = [u.strip() for u in args.meta.split(",") if u.strip()]
    if not urls:
        parser.error("--meta needs at least one URL")
    args.urls = [u if "://" in u else f"http://{u}" for u in urls]
    server = getattr(args, "server", None)
    args.kv_servers = None
    try:
        if server is not None:
            if args.command not in ("status", *GROUP_COMMANDS):
                raise ValueError(f"--server does not apply to {args.command}")
            args.kv_servers = [_address(s) for s in server.split(",") if s.strip()]
            if not args.kv_servers:
                raise ValueError("--server needs at least one HOST:PORT")
        if args.command in GROUP_COMMANDS:
            _group_operands(args)
    except ValueError as e:
        parser.error(str(e))
    return args


async def _group_servers(args: argparse.Namespace, client: MetaClient) -> tuple[str, list[str]]:
    """(a label for messages, the RESP addresses to try) for a group command."""
    if args.kv_servers:
        return "group at " + ",".join(args.kv_servers), list(args.kv_servers)
    cfg = await client.request("GET", "/config")
    servers = cfg["groups"].get(str(args.group))
    if not servers:
        known = ", ".join(sorted(cfg["groups"], key=int)) or "none"
        raise CtlError(f"no group {args.group} in config {cfg['num']} (groups: {known})")
    return f"group {args.group}", list(servers)


async def run(
    args: argparse.Namespace,
    http: Any = None,
    out: TextIO | None = None,
    kv: KVClient | None = None,
    clock: IReactorTime | None = None,
) -> int:
    """Carry out one command; returns the exit code, raises CtlError on failure.

    ``http`` (treq-like), ``kv`` and ``clock`` are there for tests."""
    out = out if out is not None else sys.stdout
    clock = clock if clock is not None else _global_reactor()
    own_kv = kv is None
    if kv is None:
        kv = KVClient(clock, timeout=args.timeout)
    try:
        return await _run(args, MetaClient(args.urls, http, args.timeout), out, kv, clock)
    finally:
        if own_kv:
            kv.close()


async def _run(
    args: argparse.Namespace, client: MetaClient, out: TextIO, kv: KVClient, clock: IReactorTime
) -> int:
    def emit(obj: Any, text: str) -> None:
        out.write((json.dumps(obj, indent=2, sort_keys=True) if args.json else text) + "\n")

    cmd = args.command
    status_timeout = min(STATUS_SERVER_TIMEOUT, args.timeout or STATUS_SERVER_TIMEOUT)
    if cmd == "status" and args.kv_servers:
        g = await group_leader(kv, None, args.kv_servers, status_timeout)
        if "error" in g:
            raise CtlError("no server answered (" + "; ".join(g["problems"]) + ")")
        emit({"groups": [g]}, format_leaders([g]) + "\n\n" + format_members(g))
        return 0
    if cmd == "status":
        status = await client.request("GET", "/status")
        cfg = await client.request("GET", "/config")
        ordered = sorted(cfg["groups"].items(), key=lambda kv: int(kv[0]))
        groups = await defer.gatherResults(
            [
                defer.ensureDeferred(group_leader(kv, int(gid), servers, status_timeout))
                for gid, servers in ordered
            ]
        )
        text = format_status(status) + "\n\n"
        if groups:
            text += format_leaders(groups) + "\n\n"
        emit({"node": status, "config": cfg, "groups": groups}, text + format_config(cfg))
    elif cmd == "config":
        cfg = await client.request("GET", f"/config/{args.num}")
        emit(cfg, format_config(cfg))
    elif cmd == "migrations":
        report = await client.request("GET", "/migrations")
        emit(report, format_migrations(report))
    elif cmd in GROUP_COMMANDS:
        label, servers = await _group_servers(args, client)
        if cmd == "transfer-leader":
            r = await transfer_leader(kv, servers, label, args.node_id, clock)
            text = format_transfer(label, r)
        elif cmd == "add-node":
            r = await change_member(kv, servers, label, args.node_id, args.peer, clock)
            text = (
                f"{label}: node {args.node_id} ({args.peer}) added as a learner; "
                f"it becomes a voter once caught up\n{_members_line(r)}"
            )
        else:
            r = await change_member(kv, servers, label, args.node_id, None, clock)
            text = f"{label}: node {args.node_id} removed\n{_members_line(r)}"
        emit({"group": args.group, "command": cmd, **r}, text)
    else:
        if cmd == "join":
            body: dict[str, Any] = {"group": args.group, "servers": args.servers}
            what = f"has group {args.group} with these servers"
            done = f"group {args.group} joined"
        elif cmd == "leave":
            body = {"group": args.group}
            what = done = f"group {args.group} left"
        elif cmd == "move":
            body = {"lo": args.lo, "hi": args.hi, "group": args.group}
            span = f"slot {args.lo}" if args.lo == args.hi else f"slots {args.lo}-{args.hi}"
            what = f"gives {span} to group {args.group}"
            done = f"{span} moved to group {args.group}"
        else:
            body = {}
            what, done = "balanced", "rebalanced"
        result = await client.request("POST", f"/{cmd}", body)
        summary = _change_summary(what if not result.get("changed") else done, result)
        if result.get("changed") and not args.no_wait:
            await wait_for_data(client, result["config"]["num"], out, not args.json, clock)
        emit(result, summary + "\n\n" + format_config(result["config"]))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``eraftctl``)."""
    args = parse_args(argv)

    async def _main(reactor: Any) -> None:
        try:
            code = await run(args)
        except CtlError as e:
            sys.stderr.write(f"eraftctl: error: {e}\n")
            code = 1
        if code:
            raise SystemExit(code)

    task.react(lambda reactor: defer.ensureDeferred(_main(reactor)))


if __name__ == "__main__":
    main()
