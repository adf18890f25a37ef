"""What a Raft node drives (its application) and talks through (its peer
transport)."""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet import defer

from ..raft.types import ConfState, Entry, Message, Snapshot

__all__ = ["Application", "Transport"]


class Application(Protocol):
    """The replicated state machine a node drives."""

    def apply_batch(self, entries: list[Entry], conf_state: ConfState | None) -> list[Any]:
        """Apply committed entries in order; one result per entry.

        Must persist the effects together with ``entries[-1].index`` as the
        applied index, and ``conf_state`` if given (asynchronously is fine).
        """
        ...

    def restore_snapshot(self, snapshot: Snapshot) -> None:
        """The storage just installed ``snapshot``: drop any cached state."""
        ...

    # Optional: ``stamp(data, now_ms) -> data`` puts the leader's wall-clock
    # time on a proposal it is about to append.


class Transport(Protocol):
    """The peer links as the driver uses them."""

    def send(self, msgs: list[Message]) -> None: ...

    def forward_propose(self, nid: int, data: bytes) -> defer.Deferred[bytes]: ...

    def add_peer(self, nid: int, address: str) -> None: ...

    def remove_peer(self, nid: int) -> None: ...
