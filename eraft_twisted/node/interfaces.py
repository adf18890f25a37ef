"""What a Raft node drives (its application), keeps its state in (its
storage) and talks through (its peer transport)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from twisted.internet import defer
from twisted.protocols import amp

from ..raft.storage import Storage
from ..raft.types import ConfState, Entry, HardState, Message, Snapshot, SnapshotMeta
from ..storage.db import DBSnapshot

__all__ = ["Application", "NodeStorage", "ReadRunner", "Transport"]

T = TypeVar("T")


class Application(Protocol):
    """The replicated state machine a node drives."""

    def apply_batch(self, entries: list[Entry], conf_state: ConfState | None) -> Sequence[object]:
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

    def call(self, nid: int, command: type[amp.Command], **kw: Any) -> defer.Deferred[Any]:
        """Run ``command`` on member ``nid``; fires with its answer box
        (membership changes, leadership transfer and snapshot streams)."""
        ...

    def add_peer(self, nid: int, address: str) -> None: ...

    def remove_peer(self, nid: int) -> None: ...


class ReadRunner(Protocol):
    """Runs blocking storage reads off the reactor thread."""

    def run(self, fn: Callable[..., T], *args: Any) -> defer.Deferred[T]: ...


class NodeStorage(Storage, Protocol):
    """What the driver needs from storage besides the core's reads: writing
    what a ``Ready`` carries, snapshots and compaction, streaming snapshots."""

    @property
    def reads(self) -> ReadRunner: ...

    def applied_index(self) -> int: ...

    def log_bytes(self, lo: int, hi: int) -> int:
        """Total size of the entries in ``[lo, hi)`` still in the log."""
        ...

    def persist(
        self,
        entries: Sequence[Entry] = (),
        hard_state: HardState | None = None,
        sync: bool = True,
    ) -> defer.Deferred[None]: ...

    def install_snapshot(self, snap: Snapshot) -> defer.Deferred[bool]: ...

    def barrier(self, sync: bool = True) -> defer.Deferred[None]: ...

    def create_snapshot(
        self, index: int, conf: ConfState | None = None
    ) -> defer.Deferred[Snapshot]: ...

    def compact(self, index: int) -> defer.Deferred[None]: ...

    def outgoing_snapshot(self) -> tuple[SnapshotMeta, DBSnapshot]:
        """A frozen view of the state machine and its exact raft position."""
        ...

    def snapshot_items(self, snapshot: DBSnapshot) -> Iterator[tuple[bytes, bytes]]: ...

    def begin_snapshot_install(self) -> defer.Deferred[None]: ...

    def stage_snapshot_items(
        self, items: Iterable[tuple[bytes, bytes]]
    ) -> defer.Deferred[None]: ...
