"""The simulated network: delay, duplication, reordering, loss and partitions.

Messages wait in a heap ordered by delivery time (ties in send order), so a
random delay per message is all it takes to reorder them. Every random
choice comes from the simulation's one seeded :class:`random.Random`, in a
fixed order: the same seed gives the same deliveries.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from typing import NamedTuple

from ..raft.types import Message
from .sim_types import TICK, Knobs


class InFlight(NamedTuple):
    """A message on its way, ordered by (due, seq)."""

    due: int
    seq: int
    message: Message
    incarnation: int
    """The sender's incarnation when it sent: a restarted sender ignores reports."""
    original: bool
    """False for a duplicate, which reports nothing back to the sender."""


class SimNetwork:
    """Messages in flight between simulated nodes, and the links that are cut."""

    def __init__(self, rng: random.Random, knobs: Knobs) -> None:
        self.rng = rng
        self.knobs = knobs
        self.in_flight: list[InFlight] = []
        self.blocked: set[tuple[int, int]] = set()
        """Cut links, one way each: (from, to)."""
        self.healthy = False
        """Faults are over: every message arrives one time unit later."""
        self._seq = 0

    def send(self, m: Message, incarnation: int, now: int) -> None:
        """Put ``m`` (and maybe a duplicate) on the wire with a random delay."""
        k = self.knobs
        rng = self.rng
        copies = 2 if k.dup and rng.random() < k.dup else 1
        for c in range(copies):
            if self.healthy:
                delay = 1
            else:
                delay = rng.randint(1, k.max_delay)
                if k.long_delay and rng.random() < k.long_delay:
                    delay += rng.randint(TICK, 10 * TICK)
            self._seq += 1
            heapq.heappush(self.in_flight, InFlight(now + delay, self._seq, m, incarnation, c == 0))

    def due(self, now: int) -> Iterator[InFlight]:
        """The messages due by ``now``, in order (what is sent meanwhile is due later)."""
        heap = self.in_flight
        while heap and heap[0].due <= now:
            yield heapq.heappop(heap)

    def passes(self, m: Message, receiver_up: bool) -> bool:
        """Whether ``m`` reaches a receiver that is up: its link is not cut, and it is not lost."""
        k = self.knobs
        return (
            receiver_up
            and (m.frm, m.to) not in self.blocked
            and not (k.drop and self.rng.random() < k.drop)
        )

    def storm(self, ids: list[int], leader: int | None) -> None:
        """One tick of a storm: maybe cut some links, maybe restore them all."""
        rng = self.rng
        k = self.knobs
        if k.partition and rng.random() < k.partition:
            kind = rng.random()
            if kind < 0.4:
                self._split(ids)
            elif kind < 0.7:
                self._isolate(ids, leader if leader is not None else rng.choice(ids))
            else:
                for _ in range(rng.randint(1, len(ids))):
                    a, b = rng.sample(ids, 2)
                    self.blocked.add((a, b))
        if self.blocked and rng.random() < k.heal:
            self.blocked.clear()

    def _split(self, ids: list[int]) -> None:
        """Two sides that cannot talk to each other."""
        rng = self.rng
        side = set(rng.sample(ids, rng.randint(1, max(1, len(ids) // 2))))
        for a in ids:
            for b in ids:
                if (a in side) != (b in side):
                    self.blocked.add((a, b))

    def _isolate(self, ids: list[int], victim: int) -> None:
        """``victim`` cannot send to anyone, and mostly hears from nobody."""
        for b in ids:
            if b != victim:
                self.blocked.add((victim, b))
                if self.rng.random() < 0.8:
                    self.blocked.add((b, victim))

    def heal(self) -> None:
        """End every network fault: no cut link, no loss, no duplicate, no delay."""
        self.blocked.clear()
        self.healthy = True
        self.knobs.drop = 0.0
        self.knobs.dup = 0.0
