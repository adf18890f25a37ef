"""Fault injection against real eraftkv processes, Jepsen style.

Three parts:

* a fault-injecting TCP proxy (Twisted), run as a subprocess
  (``python -m eraft_twisted.testing.nemesis proxy``) and driven by JSON
  lines on its stdin. It holds one link per ordered pair of nodes (i, j):
  node i's outgoing Raft connection to j goes through it. A link's two
  directions can be blocked (bytes silently dropped, as in a partition that
  loses packets) or the link can refuse and reset connections; it can also
  add latency. On heal, connections that lost bytes are closed, so the AMP
  stream never resumes mid-frame.
* :class:`JepsenCluster`: n ``twistd eraftkv`` processes whose ``--peers``
  lists point at the proxy (node i's own entry is its real address, entry j
  the proxy link i->j), with kill -9 / restart / SIGSTOP / SIGCONT, and
  :class:`Nemesis`, a thread injecting random faults: partitions (both ways
  or one way, dropping or resetting), kill -9 of the leader or a random node
  and restart, pauses, leader transfers, snapshots, slow links.
* :func:`run_campaign`: concurrent redis-py clients recording every
  operation in a :class:`~eraft_twisted.testing.linearizability.History`
  while the nemesis runs; then heal, final reads, the linearizability check
  and a one-line summary. :func:`crash_loop` is the durability loop: kill -9
  nodes (sometimes all) while clients INCR and SET, and check every
  acknowledged write after each restart.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..net import no_delay
from .linearizability import History, Result, check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")

__all__ = [
    "CampaignResult",
    "CrashLoopResult",
    "JepsenCluster",
    "Nemesis",
    "NodeProcess",
    "ProxyNet",
    "Workload",
    "crash_loop",
    "run_campaign",
]


# =====================================================================
# The proxy (runs in its own process, on the Twisted reactor)
# =====================================================================


class _Link:
    """One proxied address: connections to it are relayed to ``target``."""

    def __init__(self, name: str, target: tuple[str, int]) -> None:
        self.name = name
        self.target = target
        self.port = 0
        self.blocked = {"fwd": False, "back": False}
        self.refuse = False
        self.delay = 0.0
        self.pairs: set[_Pair] = set()
        self.bytes = {"fwd": 0, "back": 0}
        self.dropped = {"fwd": 0, "back": 0}
        self.accepted = 0
        self.refused = 0


class _Pair:
    """A downstream connection (from the node) and its upstream one (to the target)."""

    def __init__(self, link: _Link, down: Any, reactor: Any) -> None:
        self.link = link
        self.down = down
        self.up: Any = None
        self.reactor = reactor
        self.pending: list[bytes] = []
        self.damaged = False
        self.closed = False
        self.queues: dict[str, deque[tuple[float, bytes]]] = {"fwd": deque(), "back": deque()}
        self.timers: dict[str, Any] = {"fwd": None, "back": None}

    def forward(self, direction: str, data: bytes) -> None:
        link = self.link
        link.bytes[direction] += len(data)
        if self.closed:
            return
        if link.blocked[direction]:
            link.dropped[direction] += len(data)
            self.damaged = True
            return
        if direction == "fwd" and self.up is None:
            self.pending.append(data)
            return
        queue = self.queues[direction]
        if link.delay <= 0 and not queue:
            self._write(direction, data)
            return
        queue.append((self.reactor.seconds() + link.delay, data))
        self._schedule(direction)

    def _write(self, direction: str, data: bytes) -> None:
        side = self.up if direction == "fwd" else self.down
        if side is not None and side.transport is not None:
            side.transport.write(data)

    def _schedule(self, direction: str) -> None:
        if self.timers[direction] is not None or not self.queues[direction]:
            return
        due = self.queues[direction][0][0]
        wait = max(0.0, due - self.reactor.seconds())
        self.timers[direction] = self.reactor.callLater(wait, self._flush, direction)

    def _flush(self, direction: str) -> None:
        self.timers[direction] = None
        queue = self.queues[direction]
        now = self.reactor.seconds()
        while queue and queue[0][0] <= now + 1e-4:
            self._write(direction, queue.popleft()[1])
        self._schedule(direction)

    def connected_up(self, up: Any) -> None:
        self.up = up
        for data in self.pending:
            self._write("fwd", data)
        self.pending = []

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.link.pairs.discard(self)
        for timer in self.timers.values():
            if timer is not None and timer.active():
                timer.cancel()
        for side in (self.down, self.up):
            if side is not None and side.transport is not None:
                side.transport.abortConnection()


def _abort(transport: Any) -> None:
    transport.abortConnection()


def _proxy_protocols() -> tuple[type, type]:
    from twisted.internet.protocol import Protocol

    class Down(Protocol):
        """The side a node connects to."""

        def __init__(self, link: _Link, reactor: Any) -> None:
            self.link = link
            self.reactor = reactor
            self.pair: _Pair | None = None

        def connectionMade(self) -> None:
            link = self.link
            if link.refuse:
                link.refused += 1
                _abort(self.transport)
                return
            link.accepted += 1
            no_delay(self.transport)
            self.pair = pair = _Pair(link, self, self.reactor)
            link.pairs.add(pair)
            from twisted.internet.endpoints import TCP4ClientEndpoint
            from twisted.internet.protocol import Factory

            endpoint = TCP4ClientEndpoint(self.reactor, *link.target, timeout=5)
            d = endpoint.connect(Factory.forProtocol(lambda: Up(pair)))
            d.addErrback(lambda _: pair.close())

        def dataReceived(self, data: bytes) -> None:
            if self.pair is not None:
                self.pair.forward("fwd", data)

        def connectionLost(self, reason: Any = None) -> None:
            if self.pair is not None:
                self.pair.close()

    class Up(Protocol):
        """The side connected to the real target."""

        def __init__(self, pair: _Pair) -> None:
            self.pair = pair

        def connectionMade(self) -> None:
            if self.pair.closed:
                _abort(self.transport)
                return
            no_delay(self.transport)
            self.pair.connected_up(self)

        def dataReceived(self, data: bytes) -> None:
            self.pair.forward("back", data)

        def connectionLost(self, reason: Any = None) -> None:
            self.pair.close()

    return Down, Up


class ProxyServer:
    """The links of one proxy process and the commands that change them."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.links: dict[str, _Link] = {}

    def command(self, msg: dict[str, Any]) -> dict[str, Any]:
        op = msg.get("op")
        if op == "link":
            return {"port": self.add_link(msg["name"], msg["target"])}
        if op == "set":
            for name in msg["names"]:
                self.set(self.links[name], msg)
            return {}
        if op == "heal":
            for link in self.links.values():
                self.set(link, {"fwd": False, "back": False, "refuse": False, "delay_ms": 0})
            return {}
        if op == "stats":
            return {
                "links": {
                    name: {
                        "bytes": link.bytes,
                        "dropped": link.dropped,
                        "accepted": link.accepted,
                        "refused": link.refused,
                        "open": len(link.pairs),
                    }
                    for name, link in self.links.items()
                }
            }
        raise ValueError(f"unknown proxy command {op!r}")

    def add_link(self, name: str, target: str) -> int:
        from twisted.internet.protocol import Factory

        host, _, port = target.rpartition(":")
        link = _Link(name, (host, int(port)))
        down, _ = _proxy_protocols()
        factory = Factory.forProtocol(lambda: down(link, self.reactor))
        listening = self.reactor.listenTCP(0, factory, interface="127.0.0.1")
        link.port = listening.getHost().port
        self.links[name] = link
        return link.port

    def set(self, link: _Link, msg: dict[str, Any]) -> None:
        healed = False
        for direction in ("fwd", "back"):
            if direction in msg:
                if link.blocked[direction] and not msg[direction]:
                    healed = True
                link.blocked[direction] = bool(msg[direction])
        if "delay_ms" in msg:
            link.delay = float(msg["delay_ms"]) / 1000.0
        if "refuse" in msg:
            link.refuse = bool(msg["refuse"])
            if link.refuse:
                for pair in list(link.pairs):
                    pair.close()
        if healed:
            # A connection that lost bytes has a broken stream: reset it.
            for pair in list(link.pairs):
                if pair.damaged:
                    pair.close()


def proxy_main() -> None:
    """Serve JSON-line commands on stdin, one JSON reply line each on stdout."""
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    server = ProxyServer(reactor)

    class Control(LineReceiver):
        delimiter = b"\n"

        def lineReceived(self, line: bytes) -> None:
            try:
                msg = json.loads(line)
                if msg.get("op") == "quit":
                    reactor.stop()  # type: ignore[attr-defined]
                    return
                reply = {"ok": True, **server.command(msg)}
            except Exception as e:  # report, keep serving
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            self.sendLine(json.dumps(reply).encode())

        def connectionLost(self, reason: Any = None) -> None:
            if reactor.running:  # type: ignore[attr-defined]
                reactor.stop()  # type: ignore[attr-defined]

    stdio.StandardIO(Control())
    reactor.run()  # type: ignore[attr-defined]


# =====================================================================
# The harness side (plain threads, blocking sockets)
# =====================================================================


def ephemeral_low() -> int:
    """The first port the kernel hands out for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_handed_out: set[int] = set()


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now, below the
    kernel's ephemeral range: a port the kernel picked for us (bind to 0)
    can be taken by any outgoing connection (a proxy's, a client's) before
    the process that is to listen on it starts. None is handed out twice
    by this process while others remain."""
    low, high = 15000, max(16000, ephemeral_low())
    rng = random.SystemRandom()
    ports: list[int] = []
    tries = 0
    while len(ports) < n:
        tries += 1
        port = rng.randrange(low, high)
        if port in ports or (port in _handed_out and tries < 50 * n):
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    _handed_out.update(ports)
    return ports


def twistd_env() -> dict[str, str]:
    """The environment for a child process that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def tail_log(path: str, n: int = 30) -> str:
    """The last ``n`` lines of a process's log, for failure messages."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def twistd_argv(
    log_path: str, plugin: str, node_id: int, data: str, peers: list[str], *extra: str
) -> list[str]:
    """``twistd -n`` running one member of a Raft group (eraftkv or eraftmeta)."""
    return [
        TWISTD,
        "-n",
        "--pidfile=",
        "--logfile",
        log_path,
        plugin,
        "--id",
        str(node_id),
        "--data",
        data,
        "--peers",
        ",".join(peers),
        *extra,
    ]


class ProxyNet:
    """The proxy subprocess, seen as links between the nodes of a group."""

    def __init__(self, n: int, real: list[str], log_path: str | None = None) -> None:
        self.n = n
        self._lock = threading.Lock()
        self._log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eraft_twisted.testing.nemesis", "proxy"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=twistd_env(),
        )
        self.ports: dict[tuple[int, int], int] = {}
        for i in range(n):
            for j in range(n):
                if i != j:
                    reply = self._call({"op": "link", "name": f"{i}-{j}", "target": real[j]})
                    self.ports[(i, j)] = reply["port"]

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the nemesis proxy exited")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"proxy: {reply.get('error')}")
        return reply

    def address(self, src: int, dst: int) -> str:
        """Where node ``src`` reaches node ``dst``."""
        return f"127.0.0.1:{self.ports[(src, dst)]}"

    def cut(self, src: int, dst: int, mode: str = "drop") -> None:
        """Nothing ``src`` sends reaches ``dst`` (one way). ``mode`` "drop"
        loses bytes silently; "reset" refuses and resets the connections
        src->dst (which also stops dst's answers on them)."""
        if mode == "reset":
            self._call({"op": "set", "names": [f"{src}-{dst}"], "refuse": True})
        else:
            self._call({"op": "set", "names": [f"{src}-{dst}"], "fwd": True})
        self._call({"op": "set", "names": [f"{dst}-{src}"], "back": True})

    def partition(self, groups: Iterable[Iterable[int]], mode: str = "drop") -> None:
        """No traffic between nodes of different groups, either way."""
        where = {node: g for g, members in enumerate(groups) for node in members}
        for a in range(self.n):
            for b in range(self.n):
                if a != b and where.get(a, -1 - a) != where.get(b, -1 - b):
                    self.cut(a, b, mode)

    def slow(self, delay_ms: float, links: Iterable[tuple[int, int]] | None = None) -> None:
        names = [f"{a}-{b}" for a, b in (links if links is not None else self.ports)]
        self._call({"op": "set", "names": names, "delay_ms": delay_ms})

    def heal(self) -> None:
        self._call({"op": "heal"})

    def stats(self) -> dict[str, Any]:
        return self._call({"op": "stats"})["links"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._call({"op": "quit"})
            except (OSError, RuntimeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        if self._log is not subprocess.DEVNULL:
            self._log.close()  # type: ignore[union-attr]


class NodeProcess:
    """One ``twistd -n eraftkv`` process that can be killed, paused and restarted."""

    def __init__(
        self,
        node_id: int,
        peers: list[str],
        resp_port: int,
        directory: str,
        extra: list[str],
    ) -> None:
        self.node_id = node_id
        self.peers = peers
        self.resp_port = resp_port
        self.data = os.path.join(directory, f"data{node_id}")
        self.log_path = os.path.join(directory, f"node{node_id}.log")
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.starts = 0
        self.join = False  # rejoined after a removal: start with --join from now on
        self.env: dict[str, str] | None = None
        """The process's environment (default :func:`twistd_env`; e.g. a skewed clock)."""

    def argv(self) -> list[str]:
        return twistd_argv(
            self.log_path,
            "eraftkv",
            self.node_id,
            self.data,
            self.peers,
            "--resp",
            f"127.0.0.1:{self.resp_port}",
            *self.extra,
            *(["--join"] if self.join else []),
        )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        with open(self.log_path + ".stderr", "ab") as stderr:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.env or twistd_env(),
                cwd=os.path.dirname(self.data),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.paused = False
        self.starts += 1

    def wait_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"node {self.node_id} exited: {self.tail_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.resp_port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node {self.node_id} did not come up: {self.tail_log()}")

    def tail_log(self, n: int = 30) -> str:
        return tail_log(self.log_path, n)

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """kill -9, and reap."""
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.paused = False

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def rss_kb(self) -> int:
        """Resident memory of the process, in KiB (0 if unknown)."""
        if self.proc is None:
            return 0
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0


def raw_command(port: int, *args: str | bytes, timeout: float = 2.0) -> bytes:
    """Send one RESP command on a fresh connection; the raw first reply line
    (and bulk payload when short). For admin probes that must never hang."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(b"".join(parts))
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith((b"+", b"-", b":")) and data.endswith(b"\r\n"):
                break
            if data[:1] in (b"$", b"=") and b"\r\n" in data:
                size = int(data[1 : data.index(b"\r\n")])
                if size < 0 or len(data) >= data.index(b"\r\n") + 2 + size + 2:
                    break
        return data


class JepsenCluster:
    """``n`` eraftkv processes in ``directory``, their peer links through a
    :class:`ProxyNet` (``proxies=True``) or direct."""

    def __init__(
        self,
        n: int = 3,
        directory: str | None = None,
        proxies: bool = True,
        extra: list[str] | None = None,
    ) -> None:
        self.n = n
        self.dir = directory or tempfile.mkdtemp(prefix="eraft-jepsen-")
        os.makedirs(self.dir, exist_ok=True)
        ports = free_ports(2 * n)
        real = [f"127.0.0.1:{p}" for p in ports[:n]]
        self.net = ProxyNet(n, real, os.path.join(self.dir, "proxy.log")) if proxies else None
        self.nodes: list[NodeProcess] = []
        args = extra or ["--tick-ms", "50"]
        if self.net is not None:
            # Each node reaches the others through its own proxies, so their
            # --peers lists differ: one token gives them one group id.
            args = [*args, "--group-token", f"jepsen-{ports[0]}"]
        for i in range(n):
            if self.net is not None:
                peers = [real[i] if j == i else self.net.address(i, j) for j in range(n)]
            else:
                peers = real
            self.nodes.append(NodeProcess(i, peers, ports[n + i], self.dir, args))

    def start(self) -> JepsenCluster:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_up()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.net is not None:
            self.net.close()

    def raft_info(self, node: NodeProcess, timeout: float = 1.0) -> dict[str, str]:
        try:
            raw = raw_command(node.resp_port, "RAFT.INFO", timeout=timeout)
        except OSError:
            return {}
        out = {}
        for line in raw.decode("latin-1").splitlines():
            key, sep, value = line.partition(":")
            if sep:
                out[key.strip()] = value.strip()
        return out

    def leader(self, timeout: float = 30.0) -> NodeProcess:
        """A node that says it is the leader and is reachable (waits for one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.alive and not node.paused:
                    if self.raft_info(node).get("raft_role") == "leader":
                        return node
            time.sleep(0.1)
        raise RuntimeError("no leader elected")

    def current_leader(self) -> NodeProcess | None:
        """The node that says it is the leader right now, if any (no waiting)."""
        for node in self.nodes:
            if node.alive and not node.paused:
                if self.raft_info(node, timeout=0.5).get("raft_role") == "leader":
                    return node
        return None

    def heal(self) -> None:
        """Undo every fault: heal links, resume and restart every node."""
        if self.net is not None:
            self.net.heal()
        for node in self.nodes:
            if node.paused:
                node.resume()
            if not node.alive:
                node.start()
        for node in self.nodes:
            node.wait_up()

    def wait_healthy(self, timeout: float = 60.0) -> NodeProcess:
        """A leader, and a write that commits through every node."""
        deadline = time.monotonic() + timeout
        leader = self.leader(timeout)
        for node in self.nodes:
            while True:
                try:
                    if raw_command(node.resp_port, "SET", "jepsen:probe", "1").startswith(b"+OK"):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {node.node_id} does not accept writes after heal")
                time.sleep(0.2)
        return leader

    def voters(self) -> list[str] | None:
        """The leader's list of voting members (None without a leader)."""
        leader = self.current_leader()
        if leader is None:
            return None
        return self.raft_info(leader).get("raft_voters", "").split(",")

    def wait_voters(self, cond: Callable[[list[str]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            voters = self.voters()
            if voters is not None and cond(voters):
                return True
            time.sleep(0.2)
        return False

    def rejoin(self, node: NodeProcess) -> None:
        """Wipe a (removed) member and start it again with ``--join``."""
        node.kill()
        shutil.rmtree(node.data, ignore_errors=True)
        node.join = True
        node.start()

    def repair_membership(self, timeout: float = 60.0) -> None:
        """Bring every node back as a voter (after membership faults)."""
        self.leader(timeout)
        voters = self.voters() or []
        for node in self.nodes:
            if str(node.node_id) not in voters:
                leader = self.leader(timeout)
                learners = self.raft_info(leader).get("raft_learners", "").split(",")
                if str(node.node_id) not in learners:
                    self.rejoin(node)
        for node in self.nodes:
            node.wait_up()
        if not self.wait_voters(lambda v: len(v) == self.n, timeout):
            raise RuntimeError(f"members did not come back: voters {self.voters()}")

    def keep_logs(self, dest: str) -> None:
        for name in os.listdir(self.dir):
            if name.startswith(("node", "proxy")):
                shutil.copy(os.path.join(self.dir, name), os.path.join(dest, name))


# ---------------------------------------------------------------------
# The nemesis
# ---------------------------------------------------------------------

FAULTS = (
    "partition",
    "oneway",
    "bridge",
    "slow",
    "kill",
    "pause",
    "transfer",
    "snapshot",
    "member",
)
NETWORK_FAULTS = ("partition", "oneway", "bridge", "slow")


class Nemesis:
    """A thread that injects one random fault at a time, holds it, heals it.

    ``faults`` picks among :data:`FAULTS`. Every action is logged with its
    time (seconds since start) in :attr:`log`.
    """

    def __init__(
        self,
        cluster: JepsenCluster,
        faults: Iterable[str],
        rng: random.Random,
        interval: tuple[float, float] = (1.0, 3.0),
        duration: tuple[float, float] = (2.0, 6.0),
        log: list[str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.faults = [f for f in faults]
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {FAULTS}")
        if cluster.net is None and set(self.faults) & {"partition", "oneway", "bridge", "slow"}:
            raise ValueError("network faults need a cluster with proxies")
        self.rng = rng
        self.interval = interval
        self.duration = duration
        self.counts: Counter[str] = Counter()
        self.log: list[str] = [] if log is None else log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self.error: BaseException | None = None

    def note(self, text: str) -> None:
        self.log.append(f"{time.monotonic() - self._t0:8.3f} {text}")

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _sleep(self, span: tuple[float, float]) -> bool:
        return not self._stop.wait(self.rng.uniform(*span))

    def _run(self) -> None:
        try:
            while self._sleep(self.interval):
                fault = self.rng.choice(self.faults)
                undo = getattr(self, "_" + fault)()
                self.counts[fault] += 1
                if undo is not None:
                    self._sleep(self.duration)
                    undo()
        except BaseException as e:  # keep it for the report
            self.error = e
            self.note(f"nemesis failed: {type(e).__name__}: {e}")

    def _victim(self) -> NodeProcess:
        """The leader half of the time (if there is one), else a random node."""
        up = [n for n in self.cluster.nodes if n.alive and not n.paused]
        if self.rng.random() < 0.5:
            leader = self.cluster.current_leader()
            if leader is not None:
                return leader
        return self.rng.choice(up or self.cluster.nodes)

    # -- network ---------------------------------------------------------
    def _heal_net(self) -> None:
        assert self.cluster.net is not None
        self.cluster.net.heal()
        self.note("heal network")

    def _partition(self) -> Callable[[], None]:
        net = self.cluster.net
        assert net is not None
        ids = list(range(self.cluster.n))
        victim = self._victim().node_id
        if self.rng.random() < 0.5:
            minority = {victim}
        else:
            self.rng.shuffle(ids)
            minority = set(ids[: (self.cluster.n - 1) // 2]) or {victim}
        majority = [i for i in range(self.cluster.n) if i not in minority]
        mode = self.rng.choice(["drop", "drop", "reset"])
        net.partition([sorted(minority), majority], mode)
        self.note(f"partition {sorted(minority)} | {majority} ({mode})")
        return self._heal_net

    def _oneway(self) -> Callable[[], None]:
        """The victim (often the leader) cannot send to the others, or hear them."""
        net = self.cluster.net
        assert net is not None
        victim = self._victim().node_id
        others = [i for i in range(self.cluster.n) if i != victim]
        outgoing = self.rng.random() < 0.5
        for other in others:
            if outgoing:
                net.cut(victim, other)
            else:
                net.cut(other, victim)
        self.note(f"one-way: {victim} {'cannot send to' if outgoing else 'cannot hear'} {others}")
        return self._heal_net

    def _bridge(self) -> Callable[[], None]:
        """A non-transitive partition: two nodes cannot talk, both still reach the rest."""
        net = self.cluster.net
        assert net is not None
        victim = self._victim().node_id
        other = self.rng.choice([i for i in range(self.cluster.n) if i != victim])
        mode = self.rng.choice(["drop", "reset"])
        net.cut(victim, other, mode)
        net.cut(other, victim, mode)
        self.note(f"bridge: {victim} x {other} ({mode})")
        return self._heal_net

    def _slow(self) -> Callable[[], None]:
        net = self.cluster.net
        assert net is not None
        ms = self.rng.choice([20, 50, 100, 200])
        net.slow(ms)
        self.note(f"slow network: +{ms} ms per link")
        return self._heal_net

    # -- processes -------------------------------------------------------
    def _kill(self) -> Callable[[], None]:
        if self.rng.random() < 0.15:
            victims = list(self.cluster.nodes)
        else:
            victims = [self._victim()]
        for node in victims:
            node.kill()
        self.note(f"kill -9 {[n.node_id for n in victims]}")

        def restart() -> None:
            for node in victims:
                if not node.alive:
                    node.start()
            self.note(f"restart {[n.node_id for n in victims]}")
            for node in victims:
                node.wait_up()

        return restart

    def _pause(self) -> Callable[[], None]:
        node = self._victim()
        node.pause()
        self.note(f"SIGSTOP {node.node_id}")

        def resume() -> None:
            node.resume()
            self.note(f"SIGCONT {node.node_id}")

        return resume

    def _transfer(self) -> None:
        node = self.rng.choice([n for n in self.cluster.nodes if n.alive and not n.paused])
        target = self.rng.randrange(self.cluster.n)
        try:
            reply = raw_command(node.resp_port, "RAFT.TRANSFER_LEADER", str(target), timeout=3)
        except OSError as e:
            reply = str(e).encode()
        self.note(f"transfer leader to {target} via {node.node_id}: {reply[:60]!r}")

    def _member(self) -> Callable[[], None] | None:
        """Remove a member (sometimes the leader), wipe it, and start it again
        with ``--join``: it comes back as a learner and is promoted.

        A rejoined node announces its own listening address, so from then on
        the others reach it directly, not through the proxy: network faults
        on links into it no longer apply (keep this fault out of network mixes).
        """
        cluster = self.cluster
        leader = cluster.current_leader()
        if leader is None:
            self.note("member change skipped: no leader")
            return None
        voters = cluster.raft_info(leader).get("raft_voters", "").split(",")
        if len(voters) < cluster.n:
            self.note(f"member change skipped: voters are {voters}")
            return None
        node = leader if self.rng.random() < 0.3 else self.rng.choice(cluster.nodes)
        k = node.node_id
        try:
            reply = raw_command(leader.resp_port, "RAFT.NODE", "REMOVE", str(k), timeout=5)
        except OSError as e:
            reply = str(e).encode()
        self.note(f"remove node {k}: {reply[:60]!r}")
        if not cluster.wait_voters(lambda v: str(k) not in v, 10):
            self.note(f"node {k} is still a member")
            return None
        cluster.rejoin(node)
        self.note(f"node {k} wiped and restarted with --join")

        def promoted() -> None:
            if cluster.wait_voters(lambda v: str(k) in v, 30):
                self.note(f"node {k} is a voter again")
            else:
                self.note(f"node {k} not promoted within 30 s")

        return promoted

    def _snapshot(self) -> None:
        node = self.rng.choice([n for n in self.cluster.nodes if n.alive and not n.paused])
        try:
            reply = raw_command(node.resp_port, "RAFT.SNAPSHOT", timeout=3)
        except OSError as e:
            reply = str(e).encode()
        self.note(f"snapshot on {node.node_id}: {reply[:60]!r}")


# ---------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------


def _connection(port: int, timeout: float) -> Any:
    from redis.backoff import NoBackoff
    from redis.connection import Connection
    from redis.retry import Retry

    return Connection(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
    )


class KeySpace:
    """A few active keys; each is retired after ``ops_per_key`` operations so
    every key's history stays small enough to check quickly."""

    def __init__(self, active: int, ops_per_key: int, rng: random.Random, prefix: str) -> None:
        self.prefix = prefix
        self.ops_per_key = ops_per_key
        self.rng = rng
        self.lock = threading.Lock()
        self.next = 0
        self.active: list[str] = []
        self.used: dict[str, int] = {}
        for _ in range(active):
            self.active.append(self._new())

    def _new(self) -> str:
        key = f"{self.prefix}{self.next}"
        self.next += 1
        self.used[key] = 0
        return key

    def pick(self) -> str:
        with self.lock:
            i = self.rng.randrange(len(self.active))
            key = self.active[i]
            self.used[key] += 1
            if self.used[key] >= self.ops_per_key:
                self.active[i] = self._new()
            return key

    def all(self) -> list[str]:
        with self.lock:
            return list(self.used)


class Workload:
    """Concurrent clients, each on its own connection with short timeouts and
    no retries, recording every operation in ``history``.

    Outcomes: a reply is ``ok``; ``-TIMEOUT`` or a lost connection/timeout
    after sending is ``info``; ``-CLUSTERDOWN`` (or any other error) is
    ``info`` for a write and ``fail`` for a read. A request is recorded only
    once its connection is up, so a refused connection records nothing.
    After a timeout, a lost connection or ``-TIMEOUT``/``-CLUSTERDOWN`` the
    client reconnects to a random node. With ``strict``, a write answered
    ``-CLUSTERDOWN`` counts as not applied (``fail``), which the README
    promises ("no leader"), so the checker holds the node to it.
    """

    MIX = (("read", 4), ("write", 3), ("increment", 2), ("delete", 1))

    def __init__(
        self,
        cluster: JepsenCluster,
        history: History,
        rng: random.Random,
        clients: int = 8,
        keys: int = 4,
        ops_per_key: int = 200,
        timeout: float = 2.0,
        prefix: str = "jk",
        strict: bool = False,
    ) -> None:
        self.cluster = cluster
        self.history = history
        self.strict = strict
        self.clients = clients
        self.timeout = timeout
        self.keys = KeySpace(keys, ops_per_key, random.Random(rng.random()), prefix)
        self.seeds = [rng.random() for _ in range(clients)]
        self.values = iter(range(1, 2**62))
        self.values_lock = threading.Lock()
        self._stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: Counter[str] = Counter()

    def start(self) -> None:
        for c in range(self.clients):
            t = threading.Thread(target=self._client, args=(c,), name=f"client-{c}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(timeout=self.timeout + 30)

    def _value(self) -> str:
        with self.values_lock:
            return str(next(self.values) * 1000)

    def _client(self, c: int) -> None:
        rng = random.Random(self.seeds[c])
        nodes = self.cluster.nodes
        node = nodes[c % len(nodes)]
        conn: Any = None
        kinds = [k for k, w in self.MIX for _ in range(w)]
        while not self._stop.is_set():
            if conn is None:
                conn = _connection(node.resp_port, self.timeout)
                try:
                    conn.connect()
                except Exception:
                    conn = None
                    node = rng.choice(nodes)
                    self._stop.wait(0.05)
                    continue
            kind = rng.choice(kinds)
            key = self.keys.pick()
            if not self.one(conn, c, kind, key, rng)[0]:
                conn.disconnect()
                conn = None
                node = rng.choice(nodes)

    def one(self, conn: Any, c: int, kind: str, key: str, rng: random.Random) -> tuple[bool, int]:
        """Run and record one operation: (keep the connection?, its id)."""
        import redis

        h = self.history
        if kind == "write":
            value = self._value()
            oid = h.invoke(c, "write", key, value)
            args: tuple[Any, ...] = ("SET", key, value)
        elif kind == "read":
            oid = h.invoke(c, "read", key)
            args = ("GET", key)
        elif kind == "increment":
            oid = h.invoke(c, "increment", key, 1)
            args = ("INCR", key)
        else:
            oid = h.invoke(c, "delete", key)
            args = ("DEL", key)
        try:
            conn.send_command(*args)
            reply = conn.read_response()
        except redis.ResponseError as e:
            # redis-py strips the codes it knows (ERR, CLUSTERDOWN...) from the text.
            text = str(e)
            stripped = getattr(e, "status_code", None)
            code = stripped or text.split(" ", 1)[0]
            self.errors[f"{kind} -{f'{code} {text}' if stripped else text}"[:64]] += 1
            if code == "TIMEOUT" or (
                kind != "read" and not (self.strict and code == "CLUSTERDOWN")
            ):
                h.info(oid)
            else:
                h.fail(oid)
            # A node that cannot reach the leader: try another one.
            return code not in ("TIMEOUT", "CLUSTERDOWN"), oid
        except (redis.RedisError, OSError) as e:
            self.errors[f"{kind} {type(e).__name__}"] += 1
            h.info(oid)
            return False, oid
        if kind == "read":
            h.ok(oid, reply)
        elif kind == "write":
            h.ok(oid)
        else:
            h.ok(oid, reply)
        return True, oid

    def final_reads(self, timeout: float = 120.0) -> int:
        """Read every key once from every node (a thread per node), retrying
        until each read succeeds; every attempt is recorded. Returns how many
        succeeded."""
        deadline = time.monotonic() + timeout
        done: list[int] = []

        def reader(node: Any) -> None:
            conn: Any = None
            for key in self.keys.all():
                while time.monotonic() < deadline:
                    if conn is None:
                        conn = _connection(node.resp_port, self.timeout)
                        try:
                            conn.connect()
                        except Exception:
                            conn = None
                            time.sleep(0.1)
                            continue
                    keep, oid = self.one(conn, -1 - node.node_id, "read", key, random.Random())
                    if self.history.ops[oid].outcome == "ok":
                        done.append(oid)
                        break
                    if not keep:
                        conn.disconnect()
                        conn = None
                    time.sleep(0.05)
            if conn is not None:
                conn.disconnect()

        threads = [threading.Thread(target=reader, args=(n,)) for n in self.cluster.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return len(done)


# ---------------------------------------------------------------------
# A campaign
# ---------------------------------------------------------------------


@dataclass
class CampaignResult:
    """What one run did and what the checker said."""

    ok: bool
    seconds: float
    operations: int
    outcomes: dict[str, int]
    faults: dict[str, int]
    check: Result
    wall: float
    kept: str | None = None
    nemesis_log: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    problem: str = ""

    def summary(self) -> str:
        if self.check.ok and not self.problem:
            verdict = "linearizable"
        elif self.check.unknown:
            verdict = "UNKNOWN (checker budget exhausted)"
        elif self.problem:
            verdict = f"FAILED ({self.problem})"
        else:
            verdict = f"NOT LINEARIZABLE (key {self.check.key!r})"
        outcomes = ", ".join(f"{v} {k}" for k, v in sorted(self.outcomes.items()))
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        text = (
            f"jepsen: {self.operations} operations ({outcomes}) in {self.seconds:.0f}s; "
            f"{sum(self.faults.values())} faults ({faults}); result: {verdict}; "
            f"checked in {self.check.elapsed:.2f}s, wall {self.wall:.0f}s"
        )
        if self.kept:
            text += f"; kept in {self.kept}"
        return text


def run_campaign(
    seconds: float = 30.0,
    faults: Iterable[str] = ("partition", "kill", "pause"),
    seed: int | None = None,
    nodes: int = 3,
    clients: int = 8,
    keys: int = 4,
    ops_per_key: int = 200,
    client_timeout: float = 2.0,
    node_args: list[str] | None = None,
    keep_dir: str | None = None,
    interval: tuple[float, float] = (1.0, 3.0),
    duration: tuple[float, float] = (2.0, 6.0),
    check_budget: int | None = 20_000_000,
    overlap: bool = False,
    strict: bool = False,
    out: Callable[[str], None] = print,
) -> CampaignResult:
    """Start a group, run clients and the nemesis for ``seconds``, heal, read
    every key, check the history, print one summary line.

    With ``overlap`` network faults and the others come from two threads,
    so they overlap (a kill during a partition...). ``strict``: see
    :class:`Workload`.

    On a failure the history (JSON), the nemesis log and the node logs are
    copied to a new directory under ``keep_dir`` (default: the system temp
    directory), whose path is printed and returned in ``kept``.
    """
    t_start = time.monotonic()
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    fault_list = list(faults)
    extra = node_args or ["--tick-ms", "50", "--timeout", "1", "--snapshot-entries", "2000"]
    cluster = JepsenCluster(nodes, proxies=True, extra=extra)
    history = History()
    groups = [fault_list] if fault_list else []
    if overlap:
        # One thread for network faults, one for the rest: they overlap.
        network = [f for f in fault_list if f in NETWORK_FAULTS]
        other = [f for f in fault_list if f not in NETWORK_FAULTS]
        groups = [g for g in (network, other) if g]
    log: list[str] = []
    nemeses = [
        Nemesis(cluster, g, random.Random(rng.random()), interval, duration, log=log)
        for g in groups
    ]
    nemesis = nemeses[0] if nemeses else Nemesis(cluster, [], rng, log=log)
    workload = Workload(
        cluster,
        history,
        random.Random(rng.random()),
        clients=clients,
        keys=keys,
        ops_per_key=ops_per_key,
        timeout=client_timeout,
        strict=strict,
    )
    problem = ""
    try:
        cluster.start()
        cluster.leader()
        workload.start()
        for n in nemeses:
            n.start()
        time.sleep(seconds)
        for n in nemeses:
            n.stop()
        nemesis.note("final heal")
        try:
            cluster.heal()
            if "member" in fault_list:
                cluster.repair_membership()
            cluster.wait_healthy()
        except RuntimeError as e:
            problem = f"no recovery after heal: {e}"
        # A little more traffic on the healed group, then stop.
        time.sleep(1.0)
        workload.stop()
        if not problem:
            reads = workload.final_reads()
            nemesis.note(f"final reads: {reads}")
        for n in nemeses:
            if n.error is not None:
                problem = problem or f"nemesis error: {n.error}"
        dead = [n.node_id for n in cluster.nodes if not n.alive]
        if dead:
            problem = problem or f"nodes {dead} died"
        result = check(history, budget=check_budget)
    finally:
        workload.stop()
        for n in nemeses:
            n.stop()
        cluster.stop()
    counts: Counter[str] = Counter()
    for n in nemeses:
        counts.update(n.counts)
    campaign = CampaignResult(
        ok=result.ok and not problem,
        seconds=seconds,
        operations=len(history),
        outcomes=history.counts(),
        faults=dict(counts),
        check=result,
        wall=time.monotonic() - t_start,
        nemesis_log=log,
        errors=dict(workload.errors),
        problem=problem,
    )
    if not campaign.ok:
        kept = tempfile.mkdtemp(prefix=f"jepsen-failure-{seed}-", dir=keep_dir)
        history.dump(os.path.join(kept, "history.json"))
        with open(os.path.join(kept, "nemesis.log"), "w") as f:
            f.write("\n".join(log) + "\n")
        with open(os.path.join(kept, "README.txt"), "w") as f:
            f.write(
                f"seed {seed}, faults {fault_list}, nodes {nodes}, seconds {seconds}\n"
                f"{campaign.summary()}\n\n{result.explanation}\n\n"
                "re-check: python -m eraft_twisted.testing.linearizability history.json\n"
            )
        cluster.keep_logs(kept)
        campaign.kept = kept
    shutil.rmtree(cluster.dir, ignore_errors=True)
    out(campaign.summary() + f" [seed {seed}, faults {','.join(fault_list) or 'none'}]")
    if not campaign.ok and result.explanation:
        out(result.explanation)
    return campaign


# ---------------------------------------------------------------------
# The crash durability loop
# ---------------------------------------------------------------------


@dataclass
class CrashLoopResult:
    ok: bool
    iterations: int
    kills: int
    all_killed: int
    acked_sets: int
    acked_incrs: int
    problems: list[str]
    wall: float
    kept: str | None = None

    def summary(self) -> str:
        verdict = "durable" if self.ok else f"FAILED ({len(self.problems)} problems)"
        text = (
            f"crash loop: {self.iterations} iterations, {self.kills} kill -9 "
            f"({self.all_killed} of the whole group), {self.acked_sets} acknowledged SETs, "
            f"{self.acked_incrs} acknowledged INCRs; result: {verdict}; wall {self.wall:.0f}s"
        )
        if self.kept:
            text += f"; kept in {self.kept}"
        return text


class _Ledger:
    """What the crash-loop clients were told."""

    def __init__(self, counters: int) -> None:
        self.lock = threading.Lock()
        self.acked = [0] * counters
        self.unknown = [0] * counters
        self.sets: dict[str, str] = {}  # key -> value, acknowledged
        self.maybe: dict[str, str] = {}  # key -> value, outcome unknown
        self.floor = [0] * counters  # highest value observed so far


def _crash_client(
    c: int,
    cluster: JepsenCluster,
    ledger: _Ledger,
    stop: threading.Event,
    rng: random.Random,
    serial: Iterator[int],
) -> None:
    import redis

    node = cluster.nodes[c % cluster.n]
    conn: Any = None
    counters = len(ledger.acked)
    while not stop.is_set():
        if conn is None:
            conn = _connection(node.resp_port, 2.0)
            try:
                conn.connect()
            except Exception:
                conn = None
                node = rng.choice(cluster.nodes)
                stop.wait(0.05)
                continue
        if rng.random() < 0.5:
            k = rng.randrange(counters)
            args: tuple[str, ...] = ("INCR", f"crash:ctr{k}")
        else:
            n = next(serial)
            key, value = f"crash:set:{c}:{n}", f"v{n}"
            args = ("SET", key, value)
        keep = True
        try:
            conn.send_command(*args)
            conn.read_response()
            ok = True
        except redis.ResponseError as e:
            ok = False
            code = getattr(e, "status_code", None) or str(e).split(" ", 1)[0]
            keep = code not in ("TIMEOUT", "CLUSTERDOWN")
        except (redis.RedisError, OSError):
            ok = False
            keep = False
        with ledger.lock:
            if args[0] == "INCR":
                if ok:
                    ledger.acked[k] += 1
                else:
                    ledger.unknown[k] += 1
            elif ok:
                ledger.sets[key] = value
            else:
                ledger.maybe[key] = value
        if not ok and not keep:
            conn.disconnect()
            conn = None
            node = rng.choice(cluster.nodes)


def _read_all(
    cluster: JepsenCluster, keys: list[str], timeout: float = 60.0
) -> list[bytes | None] | None:
    """MGET every key (in chunks) from some node, retrying on errors."""
    deadline = time.monotonic() + timeout
    out: list[bytes | None] = []
    i = 0
    while i < len(keys):
        chunk = keys[i : i + 500]
        got = None
        while got is None and time.monotonic() < deadline:
            node = random.choice([n for n in cluster.nodes if n.alive])
            conn = _connection(node.resp_port, 5.0)
            try:
                conn.connect()
                conn.send_command("MGET", *chunk)
                got = conn.read_response()
            except Exception:
                time.sleep(0.2)
            finally:
                conn.disconnect()
        if got is None:
            return None
        out.extend(got)
        i += len(chunk)
    return out


def crash_loop(
    iterations: int = 8,
    seed: int | None = None,
    nodes: int = 3,
    clients: int = 6,
    counters: int = 4,
    run: tuple[float, float] = (0.5, 2.0),
    all_nodes: float = 0.25,
    node_args: list[str] | None = None,
    keep_dir: str | None = None,
    out: Callable[[str], None] = print,
) -> CrashLoopResult:
    """kill -9 a random node (the whole group with probability ``all_nodes``)
    while clients INCR and SET; after each restart every acknowledged SET is
    present with its value, every counter is at least its acknowledged
    INCRs, at most those plus the unknown ones, and never goes down."""
    t0 = time.monotonic()
    seed = random.randrange(2**32) if seed is None else seed
    rng = random.Random(seed)
    extra = node_args or ["--tick-ms", "50", "--timeout", "2", "--snapshot-entries", "300"]
    cluster = JepsenCluster(nodes, proxies=False, extra=extra)
    ledger = _Ledger(counters)
    problems: list[str] = []
    kills = all_killed = 0
    serial = iter(range(1, 2**62))
    log: list[str] = []
    done = 0
    try:
        cluster.start()
        cluster.leader()
        for it in range(iterations):
            stop = threading.Event()
            threads = [
                threading.Thread(
                    target=_crash_client,
                    args=(c, cluster, ledger, stop, random.Random(rng.random()), serial),
                    daemon=True,
                )
                for c in range(clients)
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(*run))
            if rng.random() < all_nodes:
                victims = list(cluster.nodes)
                all_killed += 1
            else:
                victims = [rng.choice(cluster.nodes)]
            for node in victims:
                node.kill()
            kills += len(victims)
            log.append(f"iteration {it}: kill -9 {[n.node_id for n in victims]}")
            time.sleep(rng.uniform(0.1, 0.6))
            stop.set()
            for t in threads:
                t.join(timeout=30)
            for node in victims:
                node.start()
            for node in victims:
                node.wait_up()
            cluster.leader()
            problems += _verify(cluster, ledger, it)
            done += 1
            if problems:
                break
    except RuntimeError as e:
        problems.append(f"cluster failure: {e}")
    finally:
        cluster.stop()
    result = CrashLoopResult(
        ok=not problems,
        iterations=done,
        kills=kills,
        all_killed=all_killed,
        acked_sets=len(ledger.sets),
        acked_incrs=sum(ledger.acked),
        problems=problems,
        wall=time.monotonic() - t0,
    )
    if problems:
        kept = tempfile.mkdtemp(prefix=f"crash-loop-failure-{seed}-", dir=keep_dir)
        with open(os.path.join(kept, "README.txt"), "w") as f:
            f.write(f"seed {seed}\n" + "\n".join(log + problems) + "\n")
        cluster.keep_logs(kept)
        result.kept = kept
    shutil.rmtree(cluster.dir, ignore_errors=True)
    out(result.summary() + f" [seed {seed}]")
    for p in problems[:20]:
        out("  " + p)
    return result


def _verify(cluster: JepsenCluster, ledger: _Ledger, it: int) -> list[str]:
    problems: list[str] = []
    n = len(ledger.acked)
    ctr_keys = [f"crash:ctr{k}" for k in range(n)]
    set_keys = sorted(ledger.sets)
    maybe_keys = sorted(ledger.maybe)
    values = _read_all(cluster, ctr_keys + set_keys + maybe_keys)
    if values is None:
        return [f"iteration {it}: cannot read back after restart"]
    for k in range(n):
        raw = values[k]
        v = int(raw) if raw is not None else 0
        lo, hi = ledger.acked[k], ledger.acked[k] + ledger.unknown[k]
        if not lo <= v <= hi:
            problems.append(
                f"iteration {it}: counter {k} is {v}, expected {lo}..{hi} "
                f"({ledger.acked[k]} acknowledged, {ledger.unknown[k]} unknown)"
            )
        if v < ledger.floor[k]:
            problems.append(f"iteration {it}: counter {k} went down from {ledger.floor[k]} to {v}")
        ledger.floor[k] = max(ledger.floor[k], v)
    got = values[n:]
    for key, raw in zip(set_keys, got[: len(set_keys)], strict=True):
        if raw is None or raw.decode() != ledger.sets[key]:
            problems.append(
                f"iteration {it}: acknowledged SET {key}={ledger.sets[key]} reads {raw!r}"
            )
    for key, raw in zip(maybe_keys, got[len(set_keys) :], strict=True):
        if raw is not None:
            if raw.decode() != ledger.maybe[key]:
                problems.append(f"iteration {it}: SET {key} reads {raw!r}, never written")
            else:  # it happened: from now on it must stay
                ledger.sets[key] = ledger.maybe.pop(key)
    return problems


if __name__ == "__main__":
    if sys.argv[1:2] == ["proxy"]:
        proxy_main()
    else:
        sys.stderr.write("usage: python -m eraft_twisted.testing.nemesis proxy\n")
        raise SystemExit(2)
