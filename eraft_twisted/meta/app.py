"""The cluster-config state machine as a Raft application.

Entries carry msgpack-encoded operations (see :func:`encode_op`). Each
new config is persisted under its own state-machine key,
``layout.sm_meta_key(b"config:" + num as 8 bytes BE)``, in the same
batch as the applied index, so configs survive restarts and travel in
snapshots like any other state-machine data.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypedDict

import msgpack
from twisted.internet import defer
from twisted.logger import Logger

from ..raft.confchange import decode_conf_change
from ..raft.types import ConfChangeType, ConfState, Entry, EntryType, Snapshot
from ..storage import layout
from .config import BadRequest, ClusterConfig, ConfigHistory, MetaError, OpResult

log = Logger()

CONFIG_PREFIX = b"config:"
ADDR_PREFIX = b"addr:"
_NUM = struct.Struct(">Q")


class Refused(TypedDict):
    """The result of an operation the state machine refused."""

    error: str
    status: int


class MetaStorage(Protocol):
    """What the meta state machine needs from the node's storage."""

    def scan_raw(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...

    def apply_ops(
        self,
        kv_ops: Iterable[tuple[bytes, bytes | None]],
        applied_index: int,
        conf_state: ConfState | None = None,
    ) -> defer.Deferred[None]: ...


def config_key(num: int) -> bytes:
    """The DB key of config ``num`` (keys sort by number)."""
    return layout.sm_meta_key(CONFIG_PREFIX + _NUM.pack(num))


def encode_op(name: str, *args: object) -> bytes:
    """A meta operation as proposed to the log, e.g. ``encode_op("move", 0, 99, 2)``."""
    return msgpack.packb([name, *args], use_bin_type=True)


def decode_op(data: bytes) -> list[object]:
    """Inverse of :func:`encode_op`; raises BadRequest if malformed."""
    try:
        op = msgpack.unpackb(data, raw=False)
    except Exception as e:
        raise BadRequest(f"malformed meta operation: {e}") from None
    if not isinstance(op, list):
        raise BadRequest("malformed meta operation")
    return op


class MetaApplication:
    """Applies meta operations to the config history, persisting each new config.

    The result of an entry is the operation's result dict (see
    :meth:`ConfigHistory.apply`) or ``{"error": message, "status": http
    status}`` when it was refused; refusals are deterministic too.
    """

    def __init__(self, storage: MetaStorage) -> None:
        self.storage = storage
        self.history = ConfigHistory()
        self.addresses: dict[int, str] = {}
        self.on_addresses: list[Callable[[dict[int, str]], None]] = []
        self.load()

    def load(self) -> None:
        """(Re)read configs and member addresses from storage."""
        configs = []
        for _, value in self.storage.scan_raw(config_key(0)[: -_NUM.size]):
            configs.append(ClusterConfig.from_dict(msgpack.unpackb(value, raw=False)))
        self.history = ConfigHistory(configs)
        head = len(layout.sm_meta_key(ADDR_PREFIX))
        self.addresses = {
            int(key[head:]): value.decode()
            for key, value in self.storage.scan_raw(layout.sm_meta_key(ADDR_PREFIX))
        }

    def apply_batch(
        self, entries: list[Entry], conf_state: ConfState | None = None
    ) -> list[OpResult | Refused | None]:
        """Apply committed entries in order and persist with the applied index."""
        ops: list[tuple[bytes, bytes | None]] = []
        results: list[OpResult | Refused | None] = []
        for e in entries:
            if e.type == EntryType.CONF_CHANGE:
                self._apply_conf_change(e, ops)
                results.append(None)
            elif e.type == EntryType.NORMAL and e.data:
                results.append(self._apply_op(e.data, ops))
            else:
                results.append(None)
        d = self.storage.apply_ops(ops, entries[-1].index, conf_state)
        d.addErrback(lambda f: log.failure("persisting applied meta entries failed", f))
        return results

    def _apply_op(self, data: bytes, ops: list[tuple[bytes, bytes | None]]) -> OpResult | Refused:
        try:
            cfg, result = self.history.apply(decode_op(data))
        except MetaError as e:
            return {"error": str(e), "status": e.status}
        if result["changed"]:
            ops.append((config_key(cfg.num), layout.pack(result["config"])))
        return result

    def _apply_conf_change(self, e: Entry, ops: list[tuple[bytes, bytes | None]]) -> None:
        cc, _ = decode_conf_change(e.data)
        key = layout.sm_meta_key(ADDR_PREFIX + str(cc.node_id).encode())
        if cc.type == ConfChangeType.REMOVE:
            ops.append((key, None))
            self.addresses.pop(cc.node_id, None)
        elif cc.context:
            ops.append((key, cc.context))
            self.addresses[cc.node_id] = cc.context.decode()
        else:
            return
        for cb in self.on_addresses:
            cb(self.addresses)

    def restore_snapshot(self, snapshot: Snapshot) -> None:
        """The state machine was replaced by an installed snapshot: reload it."""
        self.load()
        for cb in self.on_addresses:
            cb(self.addresses)
