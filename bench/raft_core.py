"""Entries committed per second by a 3-node cluster through the pure Raft core.

No I/O and no network delay: MemoryStorage, messages handed straight to the
peer's ``step``. Every Ready is still handled in the required order (persist,
send, apply, advance), so this is the ceiling the real node's hot path is
measured against.

    .venv/bin/python bench/raft_core.py [--seconds 2] [--size 100] [--batches 1,10,100,1000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eraft_twisted.raft.core import Config  # noqa: E402
from eraft_twisted.raft.rawnode import RawNode  # noqa: E402
from eraft_twisted.raft.storage import MemoryStorage  # noqa: E402
from eraft_twisted.raft.types import ConfState, Message, Role  # noqa: E402


class Cluster:
    """Three RawNodes wired directly together."""

    def __init__(self, n: int = 3) -> None:
        ids = tuple(range(1, n + 1))
        self.storages = {i: MemoryStorage(ConfState(ids)) for i in ids}
        self.nodes = {i: RawNode(Config(i), self.storages[i], random.Random(i)) for i in ids}
        self.applied = dict.fromkeys(ids, 0)
        self.nodes[1].campaign()
        self.pump()
        assert self.nodes[1].role == Role.LEADER

    def pump(self) -> None:
        """Handle Readies and deliver messages until nothing moves."""
        nodes = self.nodes
        queue: list[Message] = []
        while True:
            for nid, n in nodes.items():
                while n.has_ready():
                    rd = n.ready()
                    st = self.storages[nid]
                    if rd.snapshot is not None:
                        st.apply_snapshot(rd.snapshot)
                    if rd.entries:
                        st.append(rd.entries)
                    if rd.hard_state is not None:
                        st.set_hard_state(rd.hard_state)
                    queue.extend(rd.messages)
                    if rd.committed_entries:
                        self.applied[nid] += len(rd.committed_entries)
                    n.advance(rd)
            if not queue:
                return
            batch, queue = queue, []
            for m in batch:
                nodes[m.to].step(m)

    def compact(self) -> None:
        """Keep memory flat over a long run, as a real node would."""
        for nid, n in self.nodes.items():
            st = self.storages[nid]
            applied = n.raft.log.applied
            if applied - st.first_index() > 20_000:
                st.create_snapshot(applied, n.conf_at(applied), b"")
                st.compact(applied - 1000)


def run(batch: int, size: int, seconds: float) -> tuple[float, float]:
    """Returns (entries committed per second on the leader, on all three nodes)."""
    c = Cluster()
    leader = c.nodes[1]
    payload = b"x" * size
    start_leader = c.applied[1]
    start_all = min(c.applied.values())
    t0 = time.perf_counter()
    deadline = t0 + seconds
    rounds = 0
    while time.perf_counter() < deadline:
        for _ in range(batch):
            leader.propose(payload)
        c.pump()
        rounds += 1
        if rounds % 64 == 0:
            c.compact()
    elapsed = time.perf_counter() - t0
    return (c.applied[1] - start_leader) / elapsed, (min(c.applied.values()) - start_all) / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    p.add_argument("--size", type=int, default=100, help="payload bytes per entry")
    p.add_argument("--batches", default="1,10,100,1000", help="entries proposed per Ready cycle")
    args = p.parse_args()
    print(f"3-node in-memory cluster, {args.size}-byte entries, {sys.version.split()[0]}")
    print(f"{'batch':>6} {'committed/s (leader)':>22} {'applied on all 3/s':>20}")
    for b in (int(x) for x in args.batches.split(",")):
        lead, everywhere = run(b, args.size, args.seconds)
        print(f"{b:>6} {lead:>22,.0f} {everywhere:>20,.0f}")


if __name__ == "__main__":
    main()
