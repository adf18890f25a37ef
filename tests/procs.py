"""Real eraftkv processes on 127.0.0.1 for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import redis

from eraft_twisted.testing.nemesis import (
    ROOT,
    TWISTD,
    free_ports,
    tail_log,
    twistd_argv,
    twistd_env,
)

__all__ = ["ROOT", "TWISTD", "Cluster", "Node", "eraftctl", "free_ports", "twistd_env"]


class Node:
    """One ``twistd -n eraftkv`` process."""

    def __init__(self, node_id: int, peers: list[str], resp_port: int, data: str, extra: list[str]):
        self.node_id = node_id
        self.peers = peers
        self.resp_port = resp_port
        self.data = data
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] | None = None
        """The process's environment (default: :func:`twistd_env`)."""
        self.log_path = os.path.join(os.path.dirname(data), f"node{node_id}.log")

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
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv(),
            env=self.env or twistd_env(),
            cwd=os.path.dirname(self.data),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_up(self, timeout: float = 20.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"node {self.node_id} exited: {self.tail_log()}")
            try:
                if self.client(timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"node {self.node_id} did not come up: {self.tail_log()}")

    def tail_log(self, n: int = 30) -> str:
        return tail_log(self.log_path, n)

    def client(self, timeout: float = 10.0, **kw: object) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.resp_port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            **kw,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """A group of ``n`` eraftkv processes in a temporary directory."""

    def __init__(self, n: int, extra: list[str] | None = None, base: str | None = None):
        self.dir = base or tempfile.mkdtemp(prefix="eraft-test-")
        ports = free_ports(2 * n)
        peers = [f"127.0.0.1:{p}" for p in ports[:n]]
        self.nodes = [
            Node(
                i,
                peers,
                ports[n + i],
                os.path.join(self.dir, f"data{i}"),
                extra or ["--tick-ms", "50"],
            )
            for i in range(n)
        ]

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_up()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def leader(self, timeout: float = 20.0, exclude: tuple[int, ...] = ()) -> Node:
        """The node that says it is leader (waits for an election)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for node in self.nodes:
                if node.node_id in exclude or node.proc is None or node.proc.poll() is not None:
                    continue
                try:
                    info = node.client(timeout=1).execute_command("RAFT.INFO")
                except redis.RedisError:
                    continue
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "raft_role:leader" in text:
                    return node
            time.sleep(0.1)
        raise RuntimeError("no leader elected")


def eraftctl(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``eraftctl`` from this checkout; text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "eraft_twisted.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=twistd_env(),
        cwd=ROOT,
    )
