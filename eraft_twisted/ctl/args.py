"""eraftctl's command line: the parser (built from the command table) and
the checks argparse cannot make."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from .commands import COMMANDS
from .groups import DEFAULT_TIMEOUT

DEFAULT_META = "http://127.0.0.1:8080"

EPILOG = (
    "transfer-leader, add-node and remove-node find GROUP's servers in the meta config; "
    "with --server HOST:PORT[,...] they (and status) talk to those kv servers instead "
    "and take no GROUP, e.g. for a single unsharded group: "
    "eraftctl --server 127.0.0.1:6379 transfer-leader"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"eraftctl: error: {message} (see eraftctl --help)\n")


def _shown(names: Sequence[str], optional: int) -> str:
    """``NODE_ID [PEER]``: the last ``optional`` names in brackets."""
    cut = len(names) - optional
    return " ".join([*names[:cut], *(f"[{n}]" for n in names[cut:])])


def _common_options() -> _Parser:
    """The options every command takes, before or after its name."""
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
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``eraftctl`` parser, one subcommand per entry of the command table."""
    common = _common_options()
    parser = _Parser(
        prog="eraftctl",
        description="Administer an eraft-twisted cluster through its meta group and kv nodes.",
        epilog=EPILOG,
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        if not command.operands:
            p = sub.add_parser(name, parents=[common], help=command.help)
            command.arguments(p)
            if command.waits:
                p.add_argument(
                    "--no-wait",
                    action="store_true",
                    help="return once the new config is committed, without waiting for the "
                    "data to move",
                )
            continue
        shown = _shown(command.operands, command.optional)
        p = sub.add_parser(
            name,
            parents=[common],
            help=command.help,
            description=command.help + ". " + EPILOG + ".",
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
    command = COMMANDS[args.command]
    optional = command.optional
    names = ([] if args.kv_servers else ["GROUP"]) + list(command.operands)
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
    """The parsed command line; exits 2 with one line on stderr on bad usage."""
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
            if not COMMANDS[args.command].takes_server:
                raise ValueError(f"--server does not apply to {args.command}")
            args.kv_servers = [_address(s) for s in server.split(",") if s.strip()]
            if not args.kv_servers:
                raise ValueError("--server needs at least one HOST:PORT")
        if COMMANDS[args.command].operands:
            _group_operands(args)
    except ValueError as e:
        parser.error(str(e))
    return args
