"""Start, grow and stop a whole sharded cluster on this machine, for trying
things out: ``python -m eraft_twisted.devcluster start``.

Layout (all on 127.0.0.1): meta group peers 8188-8190 with the admin API
on 8080-8082; kv group G's three nodes have peer ports 8088+10*G+i and
serve RESP on 6379+10*(G-1)+i (group 1: 6379-6381, group 2: 6389-6391,
...); the router listens on 12306. Every process is a daemonised twistd
with its pid file and log in the cluster directory.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

META_PEERS = [f"127.0.0.1:{8188 + i}" for i in range(3)]
META_ADMIN = [f"127.0.0.1:{8080 + i}" for i in range(3)]
ROUTER = "127.0.0.1:12306"


def group_peers(group: int) -> list[str]:
    return [f"127.0.0.1:{8088 + 10 * group + i}" for i in range(3)]


def group_resp(group: int) -> list[str]:
    return [f"127.0.0.1:{6379 + 10 * (group - 1) + i}" for i in range(3)]


def twistd() -> str:
    return os.path.join(os.path.dirname(sys.executable), "twistd")


def spawn(directory: str, name: str, args: list[str]) -> None:
    """Start one daemonised twistd process called ``name``."""
    os.makedirs(directory, exist_ok=True)
    pidfile = os.path.join(directory, f"{name}.pid")
    log = os.path.join(directory, f"{name}.log")
    subprocess.run(
        [twistd(), "--pidfile", pidfile, "--logfile", log, *args], cwd=directory, check=True
    )


def wait_port(address: str, timeout: float = 30.0) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"devcluster: {address} did not come up (see the logs)")


def start_group(directory: str, group: int) -> None:
    peers, resp = group_peers(group), group_resp(group)
    for i in range(3):
        spawn(directory, f"kv{group}-{i}", [
            "eraftkv", "--id", str(i), "--data", f"kv{group}-{i}", "--peers", ",".join(peers),
            "--resp", resp[i], "--meta", ",".join(META_PEERS), "--group", str(group),
        ])  # fmt: skip
    for address in resp:
        wait_port(address)
    print(f"group {group}: RESP on {', '.join(resp)}")


def config(timeout: float = 30.0) -> dict[str, object]:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{META_ADMIN[0]}/config", timeout=5) as r:
                result: dict[str, object] = json.loads(r.read())
                return result
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def wait_registered(group: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while str(group) not in config().get("groups", {}):  # type: ignore[operator]
        if time.time() > deadline:
            raise SystemExit(f"devcluster: group {group} did not register with the meta group")
        time.sleep(0.3)


def start(directory: str, groups: int) -> None:
    for i in range(3):
        spawn(directory, f"meta-{i}", [
            "eraftmeta", "--id", str(i), "--data", f"meta-{i}", "--peers", ",".join(META_PEERS),
            "--admin", META_ADMIN[i],
        ])  # fmt: skip
    for address in META_ADMIN:
        wait_port(address)
    print(f"meta group: peers {', '.join(META_PEERS)}; admin API http://{META_ADMIN[0]}")
    for g in range(1, groups + 1):
        start_group(directory, g)
        wait_registered(g)
    spawn(directory, "router", ["eraftkdb", "--listen", ROUTER, "--meta", ",".join(META_PEERS)])
    wait_port(ROUTER)
    print(f"router: redis-cli -p {ROUTER.rsplit(':', 1)[1]}")


def stop(directory: str) -> None:
    stopped = 0
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if not name.endswith(".pid"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
            stopped += 1
        except (OSError, ValueError):
            pass
    print(f"stopped {stopped} processes")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eraft_twisted.devcluster", description=__doc__)
    ap.add_argument("--dir", default="./eraft-cluster", help="where data, logs and pids go")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="meta group, N kv groups of 3 and the router")
    s.add_argument("--groups", type=int, default=2)
    a = sub.add_parser("add-group", help="start kv group G (it registers itself)")
    a.add_argument("group", type=int)
    sub.add_parser("stop", help="stop every process of the cluster")
    args = ap.parse_args(argv)
    directory = os.path.abspath(args.dir)
    if args.command == "start":
        start(directory, args.groups)
    elif args.command == "add-group":
        start_group(directory, args.group)
        wait_registered(args.group)
        print(f"group {args.group} registered; move slots to it with: eraftctl rebalance")
    else:
        stop(directory)


if __name__ == "__main__":
    main()
