"""The KV state machine as a Raft application (what the node applies)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from ..raft.confchange import decode_conf_change
from ..raft.types import ConfChangeType, ConfState, Entry, EntryType, Snapshot
from .statemachine import ApplyError, KVStateMachine, Result, stamp_op
from .store import KVStore

log = Logger()


class KVApplication:
    """Applies committed entries to the KV store, one WriteBatch per call."""

    def __init__(self, store: KVStore, sm: KVStateMachine | None = None) -> None:
        self.store = store
        self.sm = sm if sm is not None else KVStateMachine(store)
        self.addresses: dict[int, str] = {}
        self.on_addresses: list[Callable[[dict[int, str]], None]] = []
        self.load_replicated_state()

    def load_replicated_state(self) -> None:
        """Restore what the state machine keeps besides the data (member
        addresses, RESP addresses, slot ownership) from the store: on start,
        before the node serves or proposes anything, and after a snapshot
        replaced the data. Nothing is rebuilt by replaying the log."""
        self.load_addresses()
        self.sm.load_replicated()

    def stamp(self, data: bytes, now_ms: int) -> bytes:
        """The leader's time on an operation it is about to append: never
        behind ``log_time``, so the log's time only moves forward."""
        return stamp_op(data, max(now_ms, self.sm.log_time))

    def apply_batch(
        self, entries: list[Entry], conf_state: ConfState | None = None
    ) -> list[Result]:
        """Apply entries in order; ``conf_state`` is the membership after
        them when they include a membership change. One result per entry
        (None for a membership change)."""
        results: list[Result] = []
        for e in entries:
            if e.type == EntryType.CONF_CHANGE:
                self._apply_conf_change(e)
            if e.type != EntryType.NORMAL:
                results.append(None)
                continue
            try:
                result, writes = self.sm.apply(e.data)
            except ApplyError as err:
                # Fail-stop: skipping the entry would let this replica
                # diverge from the others, which apply it.
                raise ApplyError(
                    f"entry {e.index} (term {e.term}, {len(e.data)} bytes, "
                    f"starting {e.data[:64]!r}): {err}"
                ) from err
            self.store.stage(writes)
            results.append(result)
        d = self.store.flush(entries[-1].index, conf_state)
        d.addErrback(lambda f: log.failure("persisting applied entries failed", f))
        return results

    def _apply_conf_change(self, e: Entry) -> None:
        cc, _ = decode_conf_change(e.data)
        name = b"addr:%d" % cc.node_id
        if cc.type == ConfChangeType.REMOVE:
            self.store.stage_meta(name, None)
            self.addresses.pop(cc.node_id, None)
        elif cc.context:
            self.store.stage_meta(name, cc.context)
            self.addresses[cc.node_id] = cc.context.decode()
        for cb in self.on_addresses:
            cb(self.addresses)

    def load_addresses(self) -> dict[int, str]:
        """Member addresses learnt from membership changes (replicated state)."""
        self.addresses = {
            int(name.split(b":", 1)[1]): value.decode()
            for name, value in self.store.meta_items(b"addr:")
        }
        return self.addresses

    def restore_snapshot(self, snapshot: Snapshot) -> None:
        """The data was replaced by an installed snapshot: forget caches."""
        self.store.reset()
        self.load_replicated_state()
        for cb in self.on_addresses:
            cb(self.addresses)
        self.store.load_expiry().addErrback(
            lambda f: log.failure("loading key expiry times failed", f)
        )
