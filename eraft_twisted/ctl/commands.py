"""eraftctl's commands: the table (name -> what it does and how) and
:func:`run`, which carries out one parsed command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from .clock import global_reactor
from .errors import CtlError
from .formatting import (
    change_summary,
    format_config,
    format_leaders,
    format_members,
    format_migrations,
    format_status,
    format_transfer,
    members_line,
)
from .groups import GroupResult, KVClient, change_member, group_leader, transfer_leader
from .meta import HTTPClient, JsonObject, MetaClient
from .progress import wait_for_data

STATUS_SERVER_TIMEOUT = 2.0
"""``status`` gives each kv server at most this long (connect and reply)."""


@dataclass
class Context:
    """One run of a command: its arguments and what it talks to."""

    args: argparse.Namespace
    meta: MetaClient
    kv: KVClient
    out: TextIO
    clock: IReactorTime

    def emit(self, obj: object, text: str) -> None:
        """``text``, or ``obj`` as JSON with ``--json``."""
        json_ = self.args.json
        self.out.write((json.dumps(obj, indent=2, sort_keys=True) if json_ else text) + "\n")


# -- reading state ----------------------------------------------------------------------------


async def _status(ctx: Context) -> None:
    args = ctx.args
    timeout = min(STATUS_SERVER_TIMEOUT, args.timeout or STATUS_SERVER_TIMEOUT)
    if args.kv_servers:
        g = await group_leader(ctx.kv, None, args.kv_servers, timeout)
        if "error" in g:
            raise CtlError("no server answered (" + "; ".join(g["problems"]) + ")")
        ctx.emit({"groups": [g]}, format_leaders([g]) + "\n\n" + format_members(g))
        return
    status = await ctx.meta.request("GET", "/status")
    cfg = await ctx.meta.request("GET", "/config")
    ordered = sorted(cfg["groups"].items(), key=lambda item: int(item[0]))
    groups = await defer.gatherResults(
        [
            defer.ensureDeferred(group_leader(ctx.kv, int(gid), servers, timeout))
            for gid, servers in ordered
        ]
    )
    text = format_status(status) + "\n\n"
    if groups:
        text += format_leaders(groups) + "\n\n"
    ctx.emit({"node": status, "config": cfg, "groups": groups}, text + format_config(cfg))


async def _config(ctx: Context) -> None:
    cfg = await ctx.meta.request("GET", f"/config/{ctx.args.num}")
    ctx.emit(cfg, format_config(cfg))


async def _migrations(ctx: Context) -> None:
    report = await ctx.meta.request("GET", "/migrations")
    ctx.emit(report, format_migrations(report))


# -- config changes ---------------------------------------------------------------------------


async def _change_config(ctx: Context, body: JsonObject, what: str, done: str) -> None:
    """POST the change; ``what`` says what an unchanged config already is,
    ``done`` what changed. Then wait for the data to move, unless told not to."""
    args = ctx.args
    result = await ctx.meta.request("POST", f"/{args.command}", body)
    summary = change_summary(what if not result.get("changed") else done, result)
    if result.get("changed") and not args.no_wait:
        await wait_for_data(ctx.meta, result["config"]["num"], ctx.out, not args.json, ctx.clock)
    ctx.emit(result, summary + "\n\n" + format_config(result["config"]))


async def _join(ctx: Context) -> None:
    group = ctx.args.group
    await _change_config(
        ctx,
        {"group": group, "servers": ctx.args.servers},
        f"has group {group} with these servers",
        f"group {group} joined",
    )


async def _leave(ctx: Context) -> None:
    group = ctx.args.group
    await _change_config(ctx, {"group": group}, f"group {group} left", f"group {group} left")


async def _move(ctx: Context) -> None:
    lo, hi, group = ctx.args.lo, ctx.args.hi, ctx.args.group
    span = f"slot {lo}" if lo == hi else f"slots {lo}-{hi}"
    await _change_config(
        ctx,
        {"lo": lo, "hi": hi, "group": group},
        f"gives {span} to group {group}",
        f"{span} moved to group {group}",
    )


async def _rebalance(ctx: Context) -> None:
    await _change_config(ctx, {}, "balanced", "rebalanced")


# -- group commands ---------------------------------------------------------------------------


async def _group_servers(ctx: Context) -> tuple[str, list[str]]:
    """(a label for messages, the RESP addresses to try) for a group command."""
    args = ctx.args
    if args.kv_servers:
        return "group at " + ",".join(args.kv_servers), list(args.kv_servers)
    cfg = await ctx.meta.request("GET", "/config")
    servers = cfg["groups"].get(str(args.group))
    if not servers:
        known = ", ".join(sorted(cfg["groups"], key=int)) or "none"
        raise CtlError(f"no group {args.group} in config {cfg['num']} (groups: {known})")
    return f"group {args.group}", list(servers)


def _emit_group(ctx: Context, result: GroupResult, text: str) -> None:
    ctx.emit({"group": ctx.args.group, "command": ctx.args.command, **result}, text)


async def _transfer_leader(ctx: Context) -> None:
    label, servers = await _group_servers(ctx)
    r = await transfer_leader(ctx.kv, servers, label, ctx.args.node_id, ctx.clock)
    _emit_group(ctx, r, format_transfer(label, r))


async def _add_node(ctx: Context) -> None:
    args = ctx.args
    label, servers = await _group_servers(ctx)
    r = await change_member(ctx.kv, servers, label, args.node_id, args.peer, ctx.clock)
    text = (
        f"{label}: node {args.node_id} ({args.peer}) added as a learner; "
        f"it becomes a voter once caught up\n{members_line(r)}"
    )
    _emit_group(ctx, r, text)


async def _remove_node(ctx: Context) -> None:
    args = ctx.args
    label, servers = await _group_servers(ctx)
    r = await change_member(ctx.kv, servers, label, args.node_id, None, ctx.clock)
    _emit_group(ctx, r, f"{label}: node {args.node_id} removed\n{members_line(r)}")


# -- the table --------------------------------------------------------------------------------


def _group_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("group", type=int, metavar="GROUP")


def _config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("num", nargs="?", type=int, default=-1, metavar="N")


def _join_arguments(p: argparse.ArgumentParser) -> None:
    _group_argument(p)
    p.add_argument("servers", nargs="+", metavar="SERVER", help="host:port of each server")


def _move_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("lo", type=int, metavar="LO")
    p.add_argument("hi", type=int, metavar="HI")
    _group_argument(p)


def _no_arguments(p: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Command:
    """One eraftctl command: its ``--help`` line, its handler and its arguments."""

    help: str
    handler: Callable[[Context], Awaitable[None]]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    waits: bool = False
    """It changes the config, then waits for the data to move (``--no-wait``)."""
    operands: tuple[str, ...] = ()
    """A group command's arguments after GROUP (it then takes ``[GROUP] ...``
    or ``--server``, parsed by hand); the last ``optional`` may be left out."""
    optional: int = 0
    takes_server: bool = False
    """``--server`` applies to it."""


COMMANDS: dict[str, Command] = {
    "status": Command(
        "meta node state, each group's leader, the latest config", _status, takes_server=True
    ),
    "config": Command("show config N (default: latest)", _config, _config_arguments),
    "join": Command("add a shard group or update its servers", _join, _join_arguments, True),
    "leave": Command("remove a group (its slots move first)", _leave, _group_argument, True),
    "move": Command("give slots LO..HI to GROUP", _move, _move_arguments, True),
    "rebalance": Command("spread the slots evenly over the groups", _rebalance, waits=True),
    "migrations": Command("how far every group is with moving data", _migrations),
    "transfer-leader": Command(
        "hand GROUP's leadership to NODE_ID (default: the most up-to-date follower)",
        _transfer_leader,
        operands=("NODE_ID",),
        optional=1,
        takes_server=True,
    ),
    "add-node": Command(
        "add node NODE_ID (raft peer address PEER_HOST:PORT) to GROUP as a learner; "
        "it becomes a voter once caught up",
        _add_node,
        operands=("NODE_ID", "PEER_HOST:PORT"),
        takes_server=True,
    ),
    "remove-node": Command(
        "remove node NODE_ID from GROUP", _remove_node, operands=("NODE_ID",), takes_server=True
    ),
}
"""Every command, in the order ``--help`` lists them."""


async def run(
    args: argparse.Namespace,
    http: HTTPClient | None = None,
    out: TextIO | None = None,
    kv: KVClient | None = None,
    clock: IReactorTime | None = None,
) -> int:
    """Carry out one command; returns the exit code, raises CtlError on failure.

    ``http`` (treq-like), ``kv`` and ``clock`` are there for tests."""
    out = out if out is not None else sys.stdout
    clock = clock if clock is not None else global_reactor()
    own_kv = kv is None
    if kv is None:
        kv = KVClient(clock, timeout=args.timeout)
    try:
        meta = MetaClient(args.urls, http, args.timeout)
        await COMMANDS[args.command].handler(Context(args, meta, kv, out, clock))
        return 0
    finally:
        if own_kv:
            kv.close()
