"""``eraftctl``: the cluster's admin command line, over the meta HTTP API.

    eraftctl [--meta URL[,URL...]] [--json] [--timeout S] COMMAND
      status                      the meta node's raft state and the latest config
      config [N]                  config N (default: the latest)
      join GROUP SERVER...        add a shard group (or update its servers)
      leave GROUP                 remove a group; its slots go to the others
      move LO HI GROUP            give slots LO..HI to GROUP
      rebalance                   spread the slots evenly, moving as few as possible

Output is readable tables, or the API's JSON with ``--json``. On failure it
prints one line on stderr and exits 1 (2 for bad usage). With several
``--meta`` URLs, the next one is tried when a server cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from twisted.internet import defer, error

DEFAULT_META = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 10.0


class CtlError(Exception):
    """A failure reported to the user as one line."""


# -- talking to the meta server --------------------------------------------------------------


def _describe_connect_error(e: BaseException) -> str:
    if isinstance(e, error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, error.DNSLookupError):
        return "unknown host"
    if isinstance(e, error.TimeoutError | error.TCPTimedOutError):
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
    lines = [
        f"meta node {status['id']}: {status['role']}, term {status['term']}, leader {where}",
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


def _change_summary(what: str, result: dict[str, Any]) -> str:
    num = result["config"]["num"]
    if not result.get("changed"):
        return f"no change: config {num} already {what}"
    moved = result.get("moved", 0)
    return f"config {num}: {what}; {moved} slot{'' if moved == 1 else 's'} changed owner"


# -- commands ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"eraftctl: error: {message} (see eraftctl --help)\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--meta",
        default=argparse.SUPPRESS,
        help=f"meta server URL(s), comma-separated (default {DEFAULT_META})",
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
        description="Administer an eraft-twisted cluster through its meta group.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("status", parents=[common], help="meta node state and the latest config")
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
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.meta = getattr(args, "meta", DEFAULT_META)
    args.json = getattr(args, "json", False)
    args.timeout = getattr(args, "timeout", DEFAULT_TIMEOUT)
    urls = [u.strip() for u in args.meta.split(",") if u.strip()]
    if not urls:
        build_parser().error("--meta needs at least one URL")
    args.urls = [u if "://" in u else f"http://{u}" for u in urls]
    return args


async def run(args: argparse.Namespace, http: Any = None, out: TextIO | None = None) -> int:
    """Carry out one command; returns the exit code, raises CtlError on failure."""
    out = out if out is not None else sys.stdout
    client = MetaClient(args.urls, http, args.timeout)

    def emit(obj: Any, text: str) -> None:
        out.write((json.dumps(obj, indent=2, sort_keys=True) if args.json else text) + "\n")

    cmd = args.command
    if cmd == "status":
        status = await client.request("GET", "/status")
        cfg = await client.request("GET", "/config")
        emit({"node": status, "config": cfg}, format_status(status) + "\n\n" + format_config(cfg))
    elif cmd == "config":
        cfg = await client.request("GET", f"/config/{args.num}")
        emit(cfg, format_config(cfg))
    elif cmd == "migrations":
        report = await client.request("GET", "/migrations")
        emit(report, format_migrations(report))
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
            await wait_for_data(client, result["config"]["num"], out, show=not args.json)
        emit(result, summary + "\n\n" + format_config(result["config"]))
    return 0


def format_migrations(report: dict[str, Any]) -> str:
    """A table of every group's progress towards the latest config."""
    rows = []
    for g in report["groups"]:
        if "error" in g:
            rows.append([g["group"], "?", g["error"], "", ""])
            continue
        copying = "; ".join(
            f"{c['slots']}: {c.get('keys', 0)} keys, {c.get('bytes', 0)} B" for c in g["copying"]
        )
        rows.append(
            [g["group"], g["config"], g["incoming"] or "-", g["release_pending"] or "-",
             copying or "-"]
        )  # fmt: skip
    head = f"latest config {report['num']}; groups still moving data: {report['in_flight']}"
    return head + "\n\n" + table(["GROUP", "APPLIED", "INCOMING", "TO RELEASE", "COPYING"], rows)


async def wait_for_data(client: MetaClient, num: int, out: TextIO, show: bool) -> None:
    """Poll the groups until every one applied config ``num`` and moved its
    data, drawing a progress line (keys and bytes copied so far)."""
    from twisted.internet import reactor, task

    copied: dict[str, tuple[int, int]] = {}
    while True:
        report = await client.request("GET", "/migrations")
        unreachable = [g["group"] for g in report["groups"] if "error" in g]
        if unreachable:
            # Nothing to watch there (e.g. a group registered by hand whose
            # servers are not running yet): say so rather than hang.
            sys.stderr.write(
                f"eraftctl: not waiting for the data to move: group(s) "
                f"{', '.join(map(str, unreachable))} unreachable\n"
            )
            return
        behind = [g for g in report["groups"] if g.get("config", -1) < num]
        for g in report["groups"]:
            for c in g.get("copying", []):
                copied[f"{g['group']}:{c['slots']}"] = (c.get("keys", 0), c.get("bytes", 0))
        keys = sum(k for k, _ in copied.values())
        size = sum(b for _, b in copied.values())
        busy = report["in_flight"]
        if show:
            out.write(
                f"\rmoving data: {busy} group(s) busy, {len(behind)} behind config {num}; "
                f"{keys} keys, {size} bytes copied   "
            )
            out.flush()
        if not busy and not behind:
            if show:
                out.write("\n")
            return
        await task.deferLater(reactor, 0.5, lambda: None)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``eraftctl``)."""
    args = parse_args(argv)
    from twisted.internet import task

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
