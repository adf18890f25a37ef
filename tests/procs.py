"""Real eraftkv processes on 127.0.0.1 for end-to-end tests.

The process wrapper is :class:`~eraft_twisted.testing.procs.NodeProcess`
(``Node`` here) and a group of them a
:class:`~eraft_twisted.testing.kvgroup.KVGroup` (``Cluster`` here, its
peer links direct).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

from eraft_twisted.testing.kvgroup import KVGroup
from eraft_twisted.testing.procs import (
    ROOT,
    TWISTD,
    NodeProcess,
    free_ports,
    tail_log,
    twistd_env,
)

__all__ = [
    "ROOT",
    "TWISTD",
    "Cluster",
    "Node",
    "eraftctl",
    "free_ports",
    "tail_log",
    "twistd_env",
]

Node = NodeProcess
"""One ``twistd -n eraftkv`` process: ``Node(id, peers, resp_port, data, extra)``."""


class Cluster(KVGroup):
    """A group of ``n`` eraftkv processes in ``base`` (default: a new
    temporary directory), every node with the options ``extra``."""

    def __init__(self, n: int, extra: list[str] | None = None, base: str | None = None):
        directory = base or tempfile.mkdtemp(prefix="eraft-test-")
        super().__init__(n, directory=directory, proxies=False, extra=extra)


def eraftctl(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``eraftctl`` from this checkout; text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "eraft_twisted.ctl", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=twistd_env(),
        cwd=ROOT,
    )
