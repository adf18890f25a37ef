"""The leader's view of each follower: how far it matches and how to feed it."""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class ProgressState(IntEnum):
    """Probe: one append at a time until we find the match point.
    Replicate: pipelined appends, bounded by in-flight messages.
    Snapshot: a snapshot is on its way; wait for it."""

    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Progress:
    """Replication progress of one peer, as tracked by the leader."""

    __slots__ = (
        "match",
        "next",
        "state",
        "paused",
        "pending_snapshot",
        "recent_active",
        "inflights",
        "max_inflight",
        "is_learner",
    )

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.paused = False
        self.pending_snapshot = 0
        self.recent_active = False
        self.inflights: deque[int] = deque()
        self.max_inflight = max_inflight
        self.is_learner = is_learner

    def __repr__(self) -> str:
        return (
            f"Progress(match={self.match}, next={self.next}, state={self.state.name}, "
            f"inflight={len(self.inflights)}, learner={self.is_learner})"
        )

    def _reset(self, state: ProgressState) -> None:
        self.paused = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.clear()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """Record an acknowledged index; True if it moved ``match`` forward."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.paused = False
        if self.next < n + 1:
            self.next = n + 1
        return updated

    def optimistic_update(self, n: int) -> None:
        self.next = n + 1

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Move ``next`` back after a rejection; False if the reject is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.paused = False
        return True

    def free_le(self, index: int) -> None:
        """Release in-flight slots for appends up to ``index``."""
        while self.inflights and self.inflights[0] <= index:
            self.inflights.popleft()

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.paused
        if self.state == ProgressState.REPLICATE:
            return len(self.inflights) >= self.max_inflight
        return True
