"""The KV state machine as a Raft application (what the node applies)."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ..raft.types import Entry, EntryType
from .statemachine import KVStateMachine
from .store import KVStore

log = Logger()


class KVApplication:
    """Applies committed entries to the KV store, one WriteBatch per call."""

    def __init__(self, store: KVStore) -> None:
        self.store = store
        self.sm = KVStateMachine(store)

    def apply_batch(self, entries: list[Entry]) -> list[Any]:
        results: list[Any] = []
        for e in entries:
            if e.type != EntryType.NORMAL:
                results.append(None)
                continue
            result, writes = self.sm.apply(e.data)
            self.store.stage(writes)
            self.store.track_expiry(writes)
            results.append(result)
        d = self.store.flush(entries[-1].index)
        d.addErrback(lambda f: log.failure("persisting applied entries failed", f))
        return results
