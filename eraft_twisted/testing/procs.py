"""Real ``twistd`` processes on 127.0.0.1, for end-to-end tests and campaigns.

:class:`TwistdProcess` is the one wrapper: start (its log and stderr in
files), wait until it answers, signal, pause, kill -9, stop, start again on
the same data. :class:`NodeProcess` (``eraftkv``), :class:`MetaProcess`
(``eraftmeta``) and :class:`RouterProcess` (``eraftkdb``) say how to run
one and how to tell it is up. Also: ports, the child environment, log tails
and one-shot RESP and admin-API calls that never hang.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from signal import SIGCONT, SIGKILL, SIGSTOP, SIGTERM
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

__all__ = [
    "ROOT",
    "TWISTD",
    "MetaProcess",
    "NodeProcess",
    "RouterProcess",
    "TwistdProcess",
    "admin_call",
    "ephemeral_low",
    "free_ports",
    "raw_command",
    "tail_log",
    "try_command",
    "twistd_env",
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


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


def try_command(port: int, *args: str, timeout: float = 3.0) -> bytes:
    """:func:`raw_command`, or the text of the socket error: for log lines."""
    try:
        return raw_command(port, *args, timeout=timeout)
    except OSError as e:
        return str(e).encode()


def admin_call(
    address: str, method: str, path: str, body: object = None, timeout: float = 10.0
) -> Any:
    """One call to a meta node's HTTP admin API: its decoded JSON answer.
    Raises OSError (unreachable, or a 4xx/5xx as HTTPError) or ValueError."""
    req = urllib.request.Request(
        f"http://{address}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class TwistdProcess:
    """One ``twistd -n`` process with its own log (and its stderr next to
    it): started, waited for until it answers, signalled, paused, killed or
    stopped, and started again (on the same data)."""

    def __init__(self, args: Sequence[str], log_path: str, cwd: str) -> None:
        self.args = list(args)
        """The plugin and its options: what follows ``twistd -n ... --logfile``."""
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] | None = None
        """The process's environment (default :func:`twistd_env`; e.g. a skewed clock)."""
        self.paused = False
        self.starts = 0
        self.retired = False

    @property
    def name(self) -> str:
        """What failure messages call it."""
        return os.path.splitext(os.path.basename(self.log_path))[0]

    def plugin_args(self) -> list[str]:
        return list(self.args)

    def argv(self) -> list[str]:
        return [TWISTD, "-n", "--pidfile=", "--logfile", self.log_path, *self.plugin_args()]

    def ready(self) -> bool:
        """Whether it answers; a process with nothing to ask is up once running."""
        return True

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.retired:
            raise RuntimeError("the cluster was shut down")
        with open(self.log_path + ".stderr", "ab") as stderr:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.env or twistd_env(),
                cwd=self.cwd,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.paused = False
        self.starts += 1

    def wait_up(self, timeout: float = 30.0) -> None:
        """Wait until :meth:`ready`; RuntimeError (with the log's tail) if it
        exits or does not answer within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited: {self.tail_log()}")
            try:
                if self.ready():
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not come up: {self.tail_log()}")
            time.sleep(0.05)

    def tail_log(self, n: int = 30) -> str:
        return tail_log(self.log_path, n)

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)
        if sig == SIGSTOP:
            self.paused = True
        elif sig in (SIGCONT, SIGKILL):
            self.paused = False

    def kill(self, sig: int = SIGKILL) -> None:
        """Send ``sig`` (kill -9 by default); after SIGKILL or SIGTERM, reap."""
        self.signal(sig)
        if sig in (SIGKILL, SIGTERM) and self.proc is not None:
            self.proc.wait(timeout=30)

    def pause(self) -> None:
        self.signal(SIGSTOP)

    def resume(self) -> None:
        self.signal(SIGCONT)

    def stop(self) -> None:
        """SIGTERM (resumed first), and kill -9 after 15 s."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.paused = False

    def retire(self) -> None:
        """kill -9 for good: :meth:`start` raises from now on."""
        self.retired = True
        self.kill()

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


class NodeProcess(TwistdProcess):
    """One ``twistd -n eraftkv``: a member of a Raft group serving RESP.

    Its data is ``data``; its log ``node<id>.log`` in the same directory,
    which is also its working directory. ``peers``, ``extra`` and ``join``
    may change between starts.
    """

    log_prefix = "node"

    def __init__(
        self, node_id: int, peers: list[str], resp_port: int, data: str, extra: list[str]
    ) -> None:
        directory = os.path.dirname(data)
        log_path = os.path.join(directory, f"{self.log_prefix}{node_id}.log")
        super().__init__([], log_path, directory)
        self.node_id = node_id
        self.peers = peers
        self.resp_port = resp_port
        self.data = data
        self.extra = extra
        self.join = False
        """Rejoined after a removal: start with ``--join`` from now on."""

    @property
    def name(self) -> str:
        return f"node {self.node_id}"

    def member_args(self, plugin: str) -> list[str]:
        return [plugin, "--id", str(self.node_id), "--data", self.data]

    def plugin_args(self) -> list[str]:
        return [
            *self.member_args("eraftkv"),
            "--peers",
            ",".join(self.peers),
            "--resp",
            f"127.0.0.1:{self.resp_port}",
            *self.extra,
            *(["--join"] if self.join else []),
        ]

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.resp_port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def client(self, timeout: float = 10.0, **kw: Any) -> redis.Redis:
        """A redis-py client of this node."""
        import redis

        return redis.Redis(
            host="127.0.0.1",
            port=self.resp_port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            **kw,
        )


class MetaProcess(NodeProcess):
    """One ``twistd -n eraftmeta``; ``resp_port`` is its HTTP admin port.
    Its log is ``meta<id>.log`` next to its data."""

    log_prefix = "meta"

    @property
    def name(self) -> str:
        return f"meta node {self.node_id}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.resp_port}"

    def plugin_args(self) -> list[str]:
        return [
            *self.member_args("eraftmeta"),
            "--peers",
            ",".join(self.peers),
            "--admin",
            f"127.0.0.1:{self.resp_port}",
            *self.extra,
        ]

    def status(self, timeout: float = 2.0) -> dict[str, Any]:
        """``GET /status``: its cluster id and Raft state."""
        answer: dict[str, Any] = admin_call(
            f"127.0.0.1:{self.resp_port}", "GET", "/status", timeout=timeout
        )
        return answer

    def ready(self) -> bool:
        try:
            self.status(timeout=1)
        except urllib.error.HTTPError:
            pass  # an HTTP answer all the same
        return True


class RouterProcess(NodeProcess):
    """The ``twistd -n eraftkdb`` router (answers PING like a kv node);
    its log is ``router.log`` in ``directory``."""

    def __init__(self, port: int, meta: list[str], directory: str, extra: list[str]) -> None:
        super().__init__(0, meta, port, os.path.join(directory, "router"), extra)
        self.log_path = os.path.join(directory, "router.log")

    @property
    def name(self) -> str:
        return "router"

    def plugin_args(self) -> list[str]:
        return [
            "eraftkdb",
            "--listen",
            f"127.0.0.1:{self.resp_port}",
            "--meta",
            ",".join(self.peers),
            *self.extra,
        ]
