"""A fault-injecting TCP proxy between the members of a Raft group.

The proxy is a Twisted process of its own (``python -m
eraft_twisted.testing.proxy``) driven by JSON lines on its stdin, one JSON
reply line each on its stdout. It holds one link per ordered pair of nodes
(i, j): node i's outgoing Raft connection to j goes through it. A link's two
directions can be blocked (bytes silently dropped, as in a partition that
loses packets) or the link can refuse and reset connections; it can also add
latency. On heal, connections that lost bytes are closed, so the AMP stream
never resumes mid-frame.

:class:`ProxyNet` is the harness's side: it starts the process and cuts,
partitions, slows and heals links with plain blocking calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable
from typing import IO, Any

from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IReactorTCP,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.python.failure import Failure

from ..net import no_delay
from .procs import twistd_env

__all__ = ["ProxyNet", "ProxyServer", "proxy_main"]

DIRECTIONS = ("fwd", "back")
"""``fwd``: from the connecting node to the target; ``back``: the answers."""


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


def _abort(protocol: Protocol | None) -> None:
    if protocol is not None and protocol.transport is not None:
        ITCPTransport(protocol.transport).abortConnection()


class _Pair:
    """A downstream connection (from the node) and its upstream one (to the target)."""

    def __init__(self, link: _Link, down: _Down, clock: IReactorTime) -> None:
        self.link = link
        self.down = down
        self.up: _Up | None = None
        self.clock = clock
        self.pending: list[bytes] = []
        self.damaged = False
        self.closed = False
        self.queues: dict[str, deque[tuple[float, bytes]]] = {"fwd": deque(), "back": deque()}
        self.timers: dict[str, IDelayedCall | None] = {"fwd": None, "back": None}

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
        queue.append((self.clock.seconds() + link.delay, data))
        self._schedule(direction)

    def _write(self, direction: str, data: bytes) -> None:
        side: Protocol | None = self.up if direction == "fwd" else self.down
        if side is not None and side.transport is not None:
            side.transport.write(data)

    def _schedule(self, direction: str) -> None:
        if self.timers[direction] is not None or not self.queues[direction]:
            return
        due = self.queues[direction][0][0]
        wait = max(0.0, due - self.clock.seconds())
        self.timers[direction] = self.clock.callLater(wait, self._flush, direction)

    def _flush(self, direction: str) -> None:
        self.timers[direction] = None
        queue = self.queues[direction]
        now = self.clock.seconds()
        while queue and queue[0][0] <= now + 1e-4:
            self._write(direction, queue.popleft()[1])
        self._schedule(direction)

    def connected_up(self, up: _Up) -> None:
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
        _abort(self.down)
        _abort(self.up)


class _Down(Protocol):
    """The side a node connects to."""

    def __init__(self, link: _Link, reactor: IReactorTCP, clock: IReactorTime) -> None:
        self.link = link
        self.reactor = reactor
        self.clock = clock
        self.pair: _Pair | None = None

    def connectionMade(self) -> None:
        link = self.link
        if link.refuse:
            link.refused += 1
            _abort(self)
            return
        link.accepted += 1
        no_delay(self.transport)
        self.pair = pair = _Pair(link, self, self.clock)
        link.pairs.add(pair)
        endpoint = TCP4ClientEndpoint(self.reactor, *link.target, timeout=5)
        d = endpoint.connect(Factory.forProtocol(lambda: _Up(pair)))
        d.addErrback(lambda _: pair.close())

    def dataReceived(self, data: bytes) -> None:
        if self.pair is not None:
            self.pair.forward("fwd", data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self.pair is not None:
            self.pair.close()


class _Up(Protocol):
    """The side connected to the real target."""

    def __init__(self, pair: _Pair) -> None:
        self.pair = pair

    def connectionMade(self) -> None:
        if self.pair.closed:
            _abort(self)
            return
        no_delay(self.transport)
        self.pair.connected_up(self)

    def dataReceived(self, data: bytes) -> None:
        self.pair.forward("back", data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.pair.close()


class _LinkFactory(ServerFactory):
    def __init__(self, link: _Link, reactor: IReactorTCP, clock: IReactorTime) -> None:
        self.link = link
        self.reactor = reactor
        self.clock = clock

    def buildProtocol(self, addr: IAddress | None) -> _Down:
        down = _Down(self.link, self.reactor, self.clock)
        down.factory = self
        return down


class ProxyServer:
    """The links of one proxy process and the commands that change them."""

    def __init__(self, reactor: IReactorTCP, clock: IReactorTime) -> None:
        self.reactor = reactor
        self.clock = clock
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
        host, _, port = target.rpartition(":")
        link = _Link(name, (host, int(port)))
        factory = _LinkFactory(link, self.reactor, self.clock)
        listening = self.reactor.listenTCP(0, factory, interface="127.0.0.1")
        link.port = listening.getHost().port  # type: ignore[attr-defined]
        self.links[name] = link
        return link.port

    def set(self, link: _Link, msg: dict[str, Any]) -> None:
        healed = False
        for direction in DIRECTIONS:
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

    server = ProxyServer(reactor, reactor)  # type: ignore[arg-type]

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

        def connectionLost(self, reason: Failure | None = None) -> None:
            if reactor.running:  # type: ignore[attr-defined]
                reactor.stop()  # type: ignore[attr-defined]

    stdio.StandardIO(Control())
    reactor.run()  # type: ignore[attr-defined]


class ProxyNet:
    """The proxy subprocess, seen as links between the ``n`` nodes of a
    group whose real Raft addresses are ``real``."""

    def __init__(self, n: int, real: list[str], log_path: str | None = None) -> None:
        self.n = n
        self._lock = threading.Lock()
        self._log: IO[bytes] | None = open(log_path, "ab") if log_path else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eraft_twisted.testing.proxy"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log or subprocess.DEVNULL,
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
        """Add ``delay_ms`` to every byte on ``links`` (default: all of them)."""
        names = [f"{a}-{b}" for a, b in (links if links is not None else self.ports)]
        self._call({"op": "set", "names": names, "delay_ms": delay_ms})

    def heal(self) -> None:
        self._call({"op": "heal"})

    def stats(self) -> dict[str, dict[str, object]]:
        """Per link: bytes relayed and dropped each way, connections."""
        links: dict[str, dict[str, object]] = self._call({"op": "stats"})["links"]
        return links

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
        if self._log is not None:
            self._log.close()


if __name__ == "__main__":
    proxy_main()
