"""``python -m eraft_twisted.devcluster``: start, add a group, stop, restart,
and what a taken port or a failed start leaves behind (nothing).

Real twistd processes on 127.0.0.1, every port shifted by a random
``--port-offset`` whose ports are free and clash with neither a developer's
default cluster nor the ephemeral range other tests take ports from.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis
from twisted.trial import unittest

from eraft_twisted.devcluster import Layout, live_pid, port_in_use, port_of
from eraft_twisted.testing.procs import ephemeral_low
from tests.procs import eraftctl, tail_log, twistd_env

GROUPS = 3


def pick_offset() -> int:
    """An offset whose ports (meta, router, groups 1..GROUPS+1) are all free."""
    default = {p for p, _ in Layout(0).ports(list(range(1, 11)))}
    low = ephemeral_low()
    rng = random.Random()
    for _ in range(500):
        offset = rng.randrange(1000, 20000)
        ports = {p for p, _ in Layout(offset).ports(list(range(1, GROUPS + 2)))}
        if max(ports) < low and not ports & default and not any(map(port_in_use, ports)):
            return offset
    raise RuntimeError("no free port offset found")


class DevClusterTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="eraft-devcluster-")
        self.offset = pick_offset()
        self.layout = Layout(self.offset)
        self.addCleanup(self.cleanup)

    # -- helpers -------------------------------------------------------------
    def devcluster(self, *argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "eraft_twisted.devcluster",
                "--dir",
                self.dir,
                "--port-offset",
                str(self.offset),
                "--tick-ms",
                "50",
                *argv,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=twistd_env(),
            cwd=self.dir,
        )

    def processes(self) -> list[tuple[int, str]]:
        """Every live process whose command line names the cluster directory."""
        mark = os.fsencode(self.dir)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if mark in cmdline:  # a zombie's cmdline is empty
                found.append((int(entry), cmdline.replace(b"\0", b" ").decode(errors="replace")))
        return found

    def live_pidfiles(self) -> list[str]:
        return [p for p in glob.glob(os.path.join(self.dir, "*.pid")) if live_pid(p) is not None]

    def logs(self) -> str:
        return "".join(
            f"\n--- {os.path.basename(p)}\n{tail_log(p, 8)}"
            for p in sorted(glob.glob(os.path.join(self.dir, "*.log")))
        )

    def assertRan(self, result: subprocess.CompletedProcess[str]) -> None:
        self.assertEqual(
            result.returncode, 0, f"{result.args}\n{result.stdout}{result.stderr}{self.logs()}"
        )

    def assertNothingRunning(self) -> None:
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)  # a daemon exiting right now
        self.assertEqual(self.processes(), [])
        self.assertEqual(self.live_pidfiles(), [])

    def cleanup(self) -> None:
        try:
            self.devcluster("stop", timeout=60)
        except subprocess.SubprocessError:
            pass
        for pid, _ in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, address: str) -> redis.Redis:
        return redis.Redis(port=port_of(address), socket_timeout=30, socket_connect_timeout=10)

    def group_sizes(self) -> list[int]:
        return [self.client(self.layout.group_resp(g)[0]).dbsize() for g in range(1, 4)]

    # -- tests ---------------------------------------------------------------
    def test_restart_brings_back_every_group_and_key(self) -> None:
        """2 groups, keys, add-group 3, rebalance, stop, start: all 3 groups
        come back and every key reads back through the router."""
        started = self.devcluster("start", "--groups", "2")
        self.assertRan(started)
        self.assertIn("started: meta group, groups 1, 2, router", started.stdout)
        router = self.client(self.layout.router())
        keys = [f"key:{i}" for i in range(300)]
        pipe = router.pipeline(transaction=False)
        for i, key in enumerate(keys):
            pipe.set(key, i)
        self.assertTrue(all(pipe.execute()))

        again = self.devcluster("start")
        self.assertEqual(again.returncode, 1)
        self.assertEqual(len(again.stderr.splitlines()), 1, again.stderr)
        self.assertIn("is already running", again.stderr)

        self.assertRan(self.devcluster("add-group", "3"))
        meta = ",".join(f"http://{a}" for a in self.layout.meta_admin())
        moved = eraftctl("--meta", meta, "rebalance", timeout=180)
        self.assertEqual(moved.returncode, 0, moved.stdout + moved.stderr + self.logs())
        self.assertEqual(router.dbsize(), len(keys))
        sizes = self.group_sizes()
        self.assertEqual(sum(sizes), len(keys))
        self.assertTrue(all(sizes), sizes)
        router.close()

        stopped = self.devcluster("stop")
        self.assertRan(stopped)
        self.assertEqual(stopped.stdout.strip(), "stopped 13 processes")
        self.assertNothingRunning()
        self.assertEqual(glob.glob(os.path.join(self.dir, "*.pid")), [])

        began = time.monotonic()
        restarted = self.devcluster("start")  # --groups 2: group 3 comes back for its data
        self.assertRan(restarted)
        self.assertIn("restarted: meta group, groups 1, 2, 3, router", restarted.stdout)
        router = self.client(self.layout.router())
        values = router.mget(keys)
        lost = [
            k for i, (k, v) in enumerate(zip(keys, values, strict=True)) if v != str(i).encode()
        ]
        self.assertEqual(lost, [], f"restart took {time.monotonic() - began:.1f} s{self.logs()}")
        self.assertEqual(router.dbsize(), len(keys))
        self.assertEqual(self.group_sizes(), sizes)  # the slot assignment survived
        router.close()

    def test_taken_port(self) -> None:
        """One line naming the port, exit 1, nothing started."""
        port = port_of(self.layout.group_resp(2)[0])
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()
            result = self.devcluster("start")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(
            result.stderr.splitlines(),
            [
                f"devcluster: port {port} (group 2 node 0 RESP) is in use; "
                "is a cluster already running? (make cluster-stop)"
            ],
        )
        self.assertNothingRunning()
        self.assertFalse(os.path.exists(os.path.join(self.dir, "meta-0")))

    def assertFailedCleanly(self, name: str, why: str) -> None:
        result = self.devcluster("start")
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn(f"devcluster: {name} {why}", lines[0])
        self.assertIn(f"(log: {os.path.join(self.dir, name)}.log)", lines[0])
        self.assertIn("processes this command had started", lines[0])
        self.assertNothingRunning()

    def test_failed_start_option(self) -> None:
        """A data directory that is a file: twistd refuses the options after
        the meta group and group 1 are up; they are stopped again."""
        with open(os.path.join(self.dir, "kv2-1"), "w") as f:
            f.write("not a directory\n")
        self.assertFailedCleanly("kv2-1", "failed to start: eraftkv: error: --data kv2-1")

    def test_failed_start_after_daemonising(self) -> None:
        """A corrupt LevelDB: the daemon exits once running; noticed at once."""
        os.makedirs(os.path.join(self.dir, "kv1-2"))
        with open(os.path.join(self.dir, "kv1-2", "CURRENT"), "w") as f:
            f.write("MANIFEST-999999\n")
        self.assertFailedCleanly("kv1-2", "exited during start-up")
