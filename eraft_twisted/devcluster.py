"""Start, grow, stop and restart a whole sharded cluster on this machine, for
trying things out::

    python -m eraft_twisted.devcluster [--dir DIR] [--port-offset N] start [--groups N]
    python -m eraft_twisted.devcluster [--dir DIR] add-group G
    python -m eraft_twisted.devcluster [--dir DIR] stop

Layout (all on 127.0.0.1): meta group peers 8188-8190 with the admin API
on 8080-8082; kv group G's three nodes have peer ports 8088+10*G+i and
serve RESP on 6379+10*(G-1)+i (group 1: 6379-6381, group 2: 6389-6391,
...); the router listens on 12306. Every process is a daemonised twistd
with its pid file (``NAME.pid``) and log (``NAME.log``) in the cluster
directory (``--dir``, default ``./eraft-cluster``), beside its data
(``meta-i``, ``kvG-i``).

``--port-offset N`` (or ``ERAFT_DEVCLUSTER_PORT_OFFSET=N``) adds N to every
port above, so a second cluster (a test's) can run beside the default one.
The offset a cluster was created with is recorded in ``DIR/devcluster.json``
and used by every later command on that directory; naming another one is
an error. (``--tick-ms`` is a hidden option for tests: the Raft tick of the
meta and kv nodes.)

``start`` starts the meta group, kv groups 1..N (``--groups``, default 2)
*and every kv group that has data in DIR* (groups added with ``add-group``
included), then the router, and waits until the router answers for every
group. If DIR already holds meta data this is a restart: everything that
was acknowledged, the slot assignment, the config history and the
membership are read back from disk. ``start`` refuses, with one line and
exit status 1, when a process of the cluster is already running (a pid file
names a live process of it) or when any port it would listen on is taken;
then it starts nothing. If a process fails to start, or its ports do not
come up, it names the process and its log, stops every process it started
and exits 1: a start either brings the whole cluster up or leaves nothing
running.

``add-group G`` starts group G's three nodes (the cluster must be running);
they register themselves with the meta group. ``stop`` sends SIGTERM to
every process with a pid file in DIR and waits (up to 15 s) until they have
exited, so ``make cluster-stop && make cluster`` works back to back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from subprocess import DEVNULL, PIPE, STDOUT

OFFSET_ENV = "ERAFT_DEVCLUSTER_PORT_OFFSET"
STATE_FILE = "devcluster.json"
START_TIMEOUT = 60.0
"""Seconds a process may take to listen, a group to register, the router to answer."""
STOP_TIMEOUT = 15.0
"""Seconds ``stop`` waits for the processes to exit."""
_DATA = re.compile(r"kv(\d+)-(\d+)$")


class DevClusterError(Exception):
    """Reported to the user as one line; exit status 1."""


@dataclass(frozen=True)
class Layout:
    """Every address of the cluster, shifted by ``offset``."""

    offset: int = 0

    def _addr(self, port: int) -> str:
        return f"127.0.0.1:{port + self.offset}"

    def meta_peers(self) -> list[str]:
        return [self._addr(8188 + i) for i in range(3)]

    def meta_admin(self) -> list[str]:
        return [self._addr(8080 + i) for i in range(3)]

    def group_peers(self, group: int) -> list[str]:
        return [self._addr(8088 + 10 * group + i) for i in range(3)]

    def group_resp(self, group: int) -> list[str]:
        return [self._addr(6379 + 10 * (group - 1) + i) for i in range(3)]

    def router(self) -> str:
        return self._addr(12306)

    def ports(self, groups: list[int], meta: bool = True) -> list[tuple[int, str]]:
        """(port, what it is for) of the meta group (with ``meta``), the
        router (likewise) and ``groups``."""
        out: list[tuple[str, str]] = []
        if meta:
            out += [(a, f"meta node {i} peer") for i, a in enumerate(self.meta_peers())]
            out += [(a, f"meta node {i} admin API") for i, a in enumerate(self.meta_admin())]
        for g in groups:
            out += [(a, f"group {g} node {i} peer") for i, a in enumerate(self.group_peers(g))]
            out += [(a, f"group {g} node {i} RESP") for i, a in enumerate(self.group_resp(g))]
        if meta:
            out.append((self.router(), "router"))
        return [(port_of(a), what) for a, what in out]


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@dataclass
class Proc:
    """One twistd process of the cluster."""

    name: str
    args: list[str]
    listen: list[str]


def twistd() -> str:
    return os.path.join(os.path.dirname(sys.executable), "twistd")


def port_in_use(port: int) -> bool:
    """Whether a twistd could not listen on 127.0.0.1:``port`` right now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as twisted does
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def port_open(address: str) -> bool:
    try:
        socket.create_connection((address.rsplit(":", 1)[0], port_of(address)), timeout=1).close()
        return True
    except OSError:
        return False


def resp_call(address: str, *argv: str, timeout: float = 10.0) -> bytes:
    """Send one command; the first line of the reply (enough for integers and errors)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(
            f"*{len(argv)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in argv)
        )
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("connection closed")
            buf += chunk
    return buf.split(b"\r\n", 1)[0]


def live_pid(pidfile: str) -> int | None:
    """The pid in ``pidfile`` if that process is alive and is the twistd that
    wrote it (not a zombie, not an unrelated process that reused the pid)."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid, pidfile) else None


def alive(pid: int, pidfile: str) -> bool:
    """Whether ``pid`` is the live twistd started with ``--pidfile pidfile``."""
    if pid > 0 and os.path.isdir("/proc"):
        try:  # a zombie's cmdline is empty
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return b"\0" + os.fsencode(pidfile) + b"\0" in f.read()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
        return pid > 0
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _log_reason(path: str) -> str:
    """The last error a process logged, shortened to fit one line."""
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if "error" in line.lower() or "critical" in line.lower():
            text = line.split("] ", 1)[-1].strip()
            return text if len(text) <= 200 else text[:197] + "..."
    return ""


def _argv(line: str, **values: object) -> list[str]:
    """``line`` formatted and split into words (a list value is joined by commas)."""
    return [
        word.format(**{k: ",".join(v) if isinstance(v, list) else v for k, v in values.items()})
        for word in line.split()
    ]


def _names(groups: list[int]) -> str:
    return ("group " if len(groups) == 1 else "groups ") + ", ".join(map(str, groups))


class DevCluster:
    """The processes of one cluster directory, and what this command started."""

    def __init__(
        self, directory: str, layout: Layout, tick_ms: int | None = None, shown: str | None = None
    ) -> None:
        self.dir = directory
        self.layout = layout
        self.tick_ms = tick_ms
        self.shown = shown or directory
        self.started: list[str] = []
        """Names of the processes this command started (stopped again on failure)."""

    # -- files ---------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def shown_path(self, name: str) -> str:
        return os.path.join(self.shown, name)

    def pid_names(self) -> list[str]:
        names = os.listdir(self.dir) if os.path.isdir(self.dir) else []
        return sorted(n[:-4] for n in names if n.endswith(".pid"))

    def running(self) -> dict[str, int]:
        """Name -> pid of every live process with a pid file in the directory."""
        pids = {name: live_pid(self.path(f"{name}.pid")) for name in self.pid_names()}
        return {name: pid for name, pid in pids.items() if pid is not None}

    def remove_stale_pidfiles(self) -> None:
        for name in self.pid_names():
            path = self.path(f"{name}.pid")
            if live_pid(path) is None:
                with contextlib.suppress(OSError):
                    os.remove(path)

    def data_groups(self) -> list[int]:
        """Every kv group with data (a ``kvG-i`` entry) in the directory."""
        names = os.listdir(self.dir) if os.path.isdir(self.dir) else []
        return sorted({int(m.group(1)) for n in names if (m := _DATA.match(n))})

    def has_meta_data(self) -> bool:
        return any(os.path.exists(self.path(f"meta-{i}")) for i in range(3))

    # -- the plan ------------------------------------------------------------
    def raft_args(self) -> str:
        return f" --tick-ms {self.tick_ms}" if self.tick_ms else ""

    def meta_procs(self) -> list[Proc]:
        peers, admin = self.layout.meta_peers(), self.layout.meta_admin()
        line = "eraftmeta --id {i} --data meta-{i} --peers {peers} --admin {admin}"
        return [
            Proc(
                f"meta-{i}",
                _argv(line + self.raft_args(), i=i, peers=peers, admin=admin[i]),
                [peers[i], admin[i]],
            )
            for i in range(3)
        ]

    def group_procs(self, group: int) -> list[Proc]:
        peers, resp = self.layout.group_peers(group), self.layout.group_resp(group)
        line = "eraftkv --id {i} --data kv{g}-{i} --peers {peers} --resp {resp} --meta {meta}"
        line += " --group {g}" + self.raft_args()
        meta = self.layout.meta_peers()
        return [
            Proc(
                f"kv{group}-{i}",
                _argv(line, i=i, g=group, peers=peers, resp=resp[i], meta=meta),
                [peers[i], resp[i]],
            )
            for i in range(3)
        ]

    def router_proc(self) -> Proc:
        router, meta = self.layout.router(), self.layout.meta_peers()
        return Proc("router", _argv("eraftkdb --listen {r} --meta {m}", r=router, m=meta), [router])

    def check_ports(self, planned: list[tuple[int, str]], known: list[tuple[int, str]]) -> None:
        """One line and nothing started if a port is invalid, planned twice
        (``known``: the cluster's other ports, which must not collide) or taken."""
        seen: dict[int, str] = {}
        for port, what in [*known, *planned]:
            if not 0 < port < 65536:
                raise DevClusterError(f"port {port} ({what}) is out of range; check --port-offset")
            if port in seen and seen[port] != what:
                raise DevClusterError(f"port {port} would be both {seen[port]} and {what}")
            seen[port] = what
        for port, what in planned:
            if port_in_use(port):
                raise DevClusterError(
                    f"port {port} ({what}) is in use; is a cluster already running? "
                    "(make cluster-stop)"
                )

    # -- starting ------------------------------------------------------------
    def fail(self, name: str, reason: str) -> DevClusterError:
        return DevClusterError(f"{name} {reason} (log: {self.shown_path(name + '.log')})")

    def spawn(self, procs: list[Proc]) -> None:
        """Start ``procs`` at once (daemonised twistd) and wait until each
        listens on all its addresses."""
        os.makedirs(self.dir, exist_ok=True)
        running = []
        for p in procs:
            pid, log = self.path(f"{p.name}.pid"), self.path(f"{p.name}.log")
            argv = [twistd(), "--pidfile", pid, "--logfile", log, *p.args]
            child = subprocess.Popen(argv, cwd=self.dir, stdin=DEVNULL, stdout=PIPE, stderr=STDOUT)
            running.append((p, child))
        failure: DevClusterError | None = None
        for p, child in running:
            try:
                out, _ = child.communicate(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
                self.started.append(p.name)  # its daemon may have written a pid file
                failure = failure or self.fail(p.name, "did not daemonise in time")
                continue
            if child.returncode == 0:
                self.started.append(p.name)
            elif failure is None:
                lines = [x.strip() for x in out.decode(errors="replace").splitlines() if x.strip()]
                why = lines[-1] if lines else f"exit status {child.returncode}"
                failure = self.fail(p.name, f"failed to start: {why}")
        if failure is not None:
            raise failure
        self.wait_listening(procs)

    def wait_listening(self, procs: list[Proc]) -> None:
        pending = {p.name: list(p.listen) for p in procs}
        deadline = time.monotonic() + START_TIMEOUT
        while pending:
            for name, addresses in list(pending.items()):
                while addresses and port_open(addresses[0]):
                    addresses.pop(0)
                if not addresses:
                    del pending[name]
                elif live_pid(self.path(f"{name}.pid")) is None:
                    reason = _log_reason(self.path(f"{name}.log"))
                    raise self.fail(name, f"exited during start-up: {reason}".rstrip(": "))
            if pending and time.monotonic() > deadline:
                name, addresses = next(iter(pending.items()))
                raise self.fail(
                    name, f"did not listen on {addresses[0]} within {START_TIMEOUT:g} s"
                )
            if pending:
                time.sleep(0.1)

    def config(self) -> dict[str, object]:
        """The latest config from any meta node's admin API."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for address in self.layout.meta_admin():
                try:
                    with urllib.request.urlopen(f"http://{address}/config", timeout=5) as r:
                        result: dict[str, object] = json.loads(r.read())
                        return result
                except (OSError, ValueError):
                    pass
            if time.monotonic() > deadline:
                raise DevClusterError(
                    f"the meta group did not answer within {START_TIMEOUT:g} s "
                    f"(logs: {self.shown_path('meta-*.log')})"
                )
            time.sleep(0.3)

    def wait_registered(self, group: int) -> None:
        """Until the meta config lists ``group`` (at once if it already did:
        registration is idempotent, a restarted group does not join again)."""
        deadline = time.monotonic() + START_TIMEOUT
        while str(group) not in self.config().get("groups", {}):  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise DevClusterError(
                    f"group {group} did not register with the meta group within "
                    f"{START_TIMEOUT:g} s (logs: {self.shown_path(f'kv{group}-*.log')})"
                )
            time.sleep(0.3)

    def procs_of(self, groups: list[int]) -> list[Proc]:
        return [p for g in groups for p in self.group_procs(g)]

    def registered(self, groups: list[int]) -> None:
        for g in groups:
            self.wait_registered(g)
            print(f"group {g}: RESP on {', '.join(self.layout.group_resp(g))}", flush=True)

    def wait_serving(self) -> None:
        """Until the router answers DBSIZE, which asks every group that owns
        slots (so each has a leader and serves reads)."""
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while True:
            try:
                reply = resp_call(self.layout.router(), "DBSIZE")
                if reply.startswith(b":"):
                    return
                last = reply.decode(errors="replace").lstrip("-")
            except OSError as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise DevClusterError(
                    f"the cluster did not answer through the router within {START_TIMEOUT:g} s "
                    f"({last}; logs in {self.shown})"
                )
            time.sleep(0.3)

    def start(self, groups: list[int]) -> None:
        running = self.running()
        if running:
            raise DevClusterError(
                f"the cluster in {self.shown} is already running ({len(running)} processes: "
                f"{', '.join(running)}); stop it first (make cluster-stop)"
            )
        self.remove_stale_pidfiles()
        restart = self.has_meta_data()
        groups = sorted(set(groups) | set(self.data_groups()))
        self.check_ports(self.layout.ports(groups), [])
        write_offset(self.dir, self.layout.offset)
        # A new cluster gives every slot to the first group that registers:
        # group 1 starts with the meta group, the other groups and the router
        # once it has registered. A restart starts everything at once.
        first, rest = (groups, []) if restart else (groups[:1], groups[1:])
        router = [self.router_proc()]
        self.spawn(self.meta_procs() + self.procs_of(first) + (router if restart else []))
        peers, admin = ", ".join(self.layout.meta_peers()), self.layout.meta_admin()
        print(f"meta group: peers {peers}; admin API http://{admin[0]}", flush=True)
        self.registered(first)
        if not restart:
            self.spawn(self.procs_of(rest) + router)
            self.registered(rest)
        self.wait_serving()
        print(f"router: redis-cli -p {port_of(self.layout.router())}")
        if self.layout.offset:
            urls = ",".join(f"http://{a}" for a in admin)
            print(f"eraftctl: .venv/bin/eraftctl --meta {urls}")
        verb = "restarted" if restart else "started"
        print(f"{verb}: meta group, {_names(groups)}, router (data in {self.shown})")

    def add_group(self, group: int) -> None:
        running = self.running()
        if not any(name.startswith("meta-") for name in running):
            raise DevClusterError(
                f"the cluster in {self.shown} is not running; start it first (make cluster)"
            )
        live = [p.name for p in self.group_procs(group) if p.name in running]
        if live:
            raise DevClusterError(f"group {group} is already running ({', '.join(live)})")
        self.remove_stale_pidfiles()
        others = [g for g in self.data_groups() if g != group]
        self.check_ports(self.layout.ports([group], meta=False), self.layout.ports(others))
        self.spawn(self.group_procs(group))
        self.registered([group])
        print(f"group {group} registered; move slots to it with: eraftctl rebalance")

    # -- stopping ------------------------------------------------------------
    def stop(self, names: list[str] | None = None, kill: bool = False) -> tuple[int, list[str]]:
        """SIGTERM the live processes called ``names`` (default: all), wait
        until they exit (SIGKILL the rest after STOP_TIMEOUT with ``kill``),
        then remove their stale pid files. Returns (stopped, still running)."""
        targets = {}
        for name, pid in self.running().items():
            if names is None or name in names:
                targets[name] = pid
                for sig in (signal.SIGCONT, signal.SIGTERM):
                    with contextlib.suppress(OSError):
                        os.kill(pid, sig)
        stuck = self._wait_exit(targets, STOP_TIMEOUT)
        if stuck and kill:
            for name in stuck:
                with contextlib.suppress(OSError):
                    os.kill(targets[name], signal.SIGKILL)
            stuck = self._wait_exit({n: targets[n] for n in stuck}, 5.0)
        self.remove_stale_pidfiles()
        return len(targets) - len(stuck), stuck

    def _wait_exit(self, targets: dict[str, int], timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while True:
            left = [n for n in targets if alive(targets[n], self.path(f"{n}.pid"))]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.1)

    def undo(self, error: DevClusterError) -> DevClusterError:
        """Stop what this command started; the error, saying so."""
        stopped, stuck = self.stop(self.started, kill=True)
        note = f"; stopped the {stopped} processes this command had started" if stopped else ""
        if stuck:
            note += f"; could not stop {', '.join(stuck)}"
        return DevClusterError(f"{error}{note}")


def read_offset(directory: str) -> int | None:
    try:
        with open(os.path.join(directory, STATE_FILE)) as f:
            return int(json.load(f)["port_offset"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_offset(directory: str, offset: int) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, STATE_FILE), "w") as f:
        json.dump({"port_offset": offset}, f)
        f.write("\n")


def resolve_offset(directory: str, given: int | None) -> int:
    """``--port-offset``, else the environment, else what DIR recorded, else 0."""
    if given is None and os.environ.get(OFFSET_ENV, "").strip():
        try:
            given = int(os.environ[OFFSET_ENV])
        except ValueError:
            raise DevClusterError(f"{OFFSET_ENV} must be an integer") from None
    recorded = read_offset(directory)
    if given is not None and recorded is not None and given != recorded:
        raise DevClusterError(
            f"the cluster in {directory} was created with --port-offset {recorded}, not {given}"
        )
    return given if given is not None else recorded or 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--dir", help="default ./eraft-cluster")
    helps = f"add N to every port (or set {OFFSET_ENV}); recorded in DIR"
    common.add_argument("--port-offset", type=int, metavar="N", help=helps)
    common.add_argument("--tick-ms", type=int, help=argparse.SUPPRESS)
    ap = argparse.ArgumentParser(
        prog="python -m eraft_twisted.devcluster",
        parents=[common],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", parents=[common], help="meta group, kv groups, router")
    helps = "start groups 1..N (default 2) and every group with data in DIR"
    s.add_argument("--groups", type=int, default=2, metavar="N", help=helps)
    a = sub.add_parser("add-group", parents=[common], help="start kv group G (it registers itself)")
    a.add_argument("group", type=int)
    sub.add_parser("stop", parents=[common], help="stop every process of the cluster")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    shown = getattr(args, "dir", "./eraft-cluster")
    directory = os.path.abspath(shown)
    cluster: DevCluster | None = None
    try:
        given = None if args.command == "stop" else getattr(args, "port_offset", None)
        layout = Layout(resolve_offset(directory, given))  # stop needs no ports
        cluster = DevCluster(directory, layout, getattr(args, "tick_ms", None), shown)
        if args.command == "start":
            if args.groups < 1:
                raise DevClusterError("--groups must be at least 1")
            cluster.start(list(range(1, args.groups + 1)))
        elif args.command == "add-group":
            if args.group < 1:
                raise DevClusterError("the group number must be at least 1")
            cluster.add_group(args.group)
        else:
            stopped, stuck = cluster.stop()
            if stuck:
                raise DevClusterError(
                    f"stopped {stopped} processes; still running after {STOP_TIMEOUT:g} s: "
                    f"{', '.join(stuck)} (try again, or kill -9 the pids in {shown}/*.pid)"
                )
            print(f"stopped {stopped} processes")
    except (Exception, KeyboardInterrupt) as e:  # one line, never a traceback
        error = (
            e
            if isinstance(e, DevClusterError)
            else DevClusterError(f"{type(e).__name__}: {e}".rstrip(": "))
        )
        if cluster is not None and cluster.started:
            error = cluster.undo(error)
        print(f"devcluster: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
