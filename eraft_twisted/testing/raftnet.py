"""A small synchronous network of RawNodes for scripted Raft tests.

In the style of etcd's raft ``network``: tests say what happens (tick this
node, campaign, cut a link, drop a kind of message) and ``stabilize()``
delivers messages until nothing moves. Every Ready is handled in the
required order (persist, send, apply, advance).
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable, Iterable

from ..raft.core import Config, Raft
from ..raft.rawnode import RawNode
from ..raft.storage import MemoryStorage
from ..raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
)

Filter = Callable[[Message], bool]
"""Returns True for a message the network must drop."""


class Net:
    """RawNodes wired together in memory, with cut links and message filters."""

    def __init__(
        self,
        ids: Iterable[int] = (1, 2, 3),
        *,
        learners: Iterable[int] = (),
        config: Callable[[int], Config] | None = None,
        storages: dict[int, MemoryStorage] | None = None,
        seed: int = 0,
        **cfg: object,
    ) -> None:
        if config is not None and cfg:
            raise TypeError(f"settings {sorted(cfg)} would be ignored: put them in config")
        self.ids = list(ids)
        learner_ids = tuple(learners)
        conf = ConfState(tuple(self.ids), learner_ids)
        self.config = config or (lambda nid: Config(nid, **cfg))  # type: ignore[arg-type]
        self.rng = random.Random(seed)
        self.storages: dict[int, MemoryStorage] = dict(storages or {})
        self.nodes: dict[int, RawNode] = {}
        self.applied: dict[int, list[Entry]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.snapshots_installed: dict[int, int] = {}
        self.queue: deque[Message] = deque()
        self.delivered: list[Message] = []
        self.sent: list[Message] = []
        self.cut_links: set[tuple[int, int]] = set()
        self.filters: list[Filter] = []
        self.down: set[int] = set()
        for nid in (*self.ids, *learner_ids):
            self.storages.setdefault(nid, MemoryStorage(conf))
            self._boot(nid)

    # -- nodes -----------------------------------------------------------
    def _boot(self, nid: int) -> None:
        st = self.storages[nid]
        snap = st.snapshot()
        self.applied[nid] = self._decode(snap) if not snap.is_empty() else []
        cfg = self.config(nid)
        cfg.applied = snap.meta.index
        self.nodes[nid] = RawNode(cfg, st, random.Random(self.rng.getrandbits(32)))
        self.read_states.setdefault(nid, [])

    def add_node(self, nid: int, conf: ConfState | None = None) -> RawNode:
        """Start a new, empty node (to be added by a membership change)."""
        self.storages[nid] = MemoryStorage(conf or ConfState())
        self._boot(nid)
        return self.nodes[nid]

    def raft(self, nid: int) -> Raft:
        """The core state of node ``nid``."""
        return self.nodes[nid].raft

    def leader(self) -> int:
        """The id of the live leader with the highest term (AssertionError if none)."""
        best = None
        for nid, n in self.nodes.items():
            if nid not in self.down and n.role == Role.LEADER:
                if best is None or n.term > self.nodes[best].term:
                    best = nid
        assert best is not None, "no leader"
        return best

    def crash(self, nid: int) -> None:
        """Stop ``nid``: it keeps only what it persisted."""
        self.down.add(nid)

    def restart(self, nid: int) -> None:
        """Start ``nid`` again from its storage."""
        self.down.discard(nid)
        self._boot(nid)

    # -- links -----------------------------------------------------------
    def cut(self, a: int, b: int) -> None:
        """Drop messages both ways between ``a`` and ``b``."""
        self.cut_links |= {(a, b), (b, a)}

    def cut_one_way(self, frm: int, to: int) -> None:
        """Drop messages from ``frm`` to ``to`` only."""
        self.cut_links.add((frm, to))

    def isolate(self, nid: int) -> None:
        """Cut ``nid`` off from every other node."""
        for other in self.nodes:
            if other != nid:
                self.cut(nid, other)

    def heal(self) -> None:
        """Restore every link and remove every filter."""
        self.cut_links.clear()
        self.filters.clear()

    def drop(self, *types: MessageType, frm: int | None = None, to: int | None = None) -> Filter:
        """Drop messages of these types (optionally only on one link); returns the filter."""

        def f(m: Message) -> bool:
            return (
                (not types or m.type in types)
                and (frm is None or m.frm == frm)
                and (to is None or m.to == to)
            )

        self.filters.append(f)
        return f

    # -- driving ---------------------------------------------------------
    def process(self, nid: int) -> bool:
        """Handle every Ready of ``nid``; True if there was one."""
        n = self.nodes[nid]
        st = self.storages[nid]
        any_ready = False
        while n.has_ready():
            any_ready = True
            rd = n.ready()
            if rd.snapshot is not None:
                st.apply_snapshot(rd.snapshot)
            st.append(rd.entries)
            if rd.hard_state is not None:
                st.set_hard_state(rd.hard_state)
            for m in rd.messages:
                self.sent.append(m)
                self.queue.append(m)
            if rd.snapshot is not None:
                self.applied[nid] = self._decode(rd.snapshot)
                self.snapshots_installed[nid] = self.snapshots_installed.get(nid, 0) + 1
            self.applied[nid].extend(rd.committed_entries)
            self.read_states[nid].extend(rd.read_states)
            n.advance(rd)
        return any_ready

    def _dropped(self, m: Message) -> bool:
        return (
            m.to in self.down
            or m.frm in self.down
            or (m.frm, m.to) in self.cut_links
            or any(f(m) for f in self.filters)
        )

    def deliver_one_round(self) -> list[Message]:
        """Deliver the messages queued now (not the ones they cause)."""
        out = []
        for _ in range(len(self.queue)):
            m = self.queue.popleft()
            if self._dropped(m):
                if m.type == MessageType.SNAPSHOT and m.frm not in self.down:
                    self.nodes[m.frm].report_snapshot(m.to, False)
                continue
            self.nodes[m.to].step(m)
            if m.type == MessageType.SNAPSHOT and m.frm not in self.down:
                self.nodes[m.frm].report_snapshot(m.to, True)
            out.append(m)
        self.delivered.extend(out)
        return out

    def stabilize(self, limit: int = 100_000) -> list[Message]:
        """Process Readies and deliver messages until quiet; returns what was delivered."""
        out: list[Message] = []
        for _ in range(limit):
            moved = False
            for nid in list(self.nodes):
                if nid not in self.down and self.process(nid):
                    moved = True
            if self.queue:
                out.extend(self.deliver_one_round())
                moved = True
            if not moved:
                return out
        raise AssertionError("network did not stabilize")

    def tick(self, nid: int | None = None, n: int = 1) -> list[Message]:
        """Tick one node (or every live node) ``n`` times, stabilizing after each tick."""
        out: list[Message] = []
        for _ in range(n):
            for i in [nid] if nid is not None else list(self.nodes):
                if i not in self.down:
                    self.nodes[i].tick()
            out.extend(self.stabilize())
        return out

    def campaign(self, nid: int) -> list[Message]:
        """Make ``nid`` start an election now, then stabilize."""
        self.nodes[nid].campaign()
        return self.stabilize()

    def propose(self, nid: int, data: bytes, stabilize: bool = True) -> int:
        """Propose on ``nid``; returns the index (raises like RawNode.propose)."""
        index = self.nodes[nid].propose(data)
        if stabilize:
            self.stabilize()
        return index

    def snapshot(self, nid: int, compact: bool = True) -> Snapshot:
        """Snapshot ``nid``'s state machine at its applied index, and compact."""
        st = self.storages[nid]
        applied = self.applied[nid]
        index = applied[-1].index if applied else 0
        data = json.dumps([[e.index, e.term, int(e.type), e.data.hex()] for e in applied])
        snap = st.create_snapshot(index, self.nodes[nid].conf_at(index), data.encode())
        if compact:
            st.compact(index)
        return snap

    @staticmethod
    def _decode(snap: Snapshot) -> list[Entry]:
        return [Entry(t, i, EntryType(k), bytes.fromhex(d)) for i, t, k, d in json.loads(snap.data)]

    # -- helpers for assertions ----------------------------------------
    def data(self, nid: int) -> list[bytes]:
        """The payloads of the normal entries ``nid`` applied."""
        return [e.data for e in self.applied[nid] if e.type == EntryType.NORMAL and e.data]

    def count(self, msgs: Iterable[Message], kind: MessageType, frm: int | None = None) -> int:
        """How many of ``msgs`` are of ``kind`` (and from ``frm``)."""
        return sum(1 for m in msgs if m.type == kind and (frm is None or m.frm == frm))


def preset_storage(
    conf: ConfState, terms: list[int], hard: HardState | None = None
) -> MemoryStorage:
    """A storage whose log holds one entry per item of ``terms`` (index 1 on)."""
    st = MemoryStorage(conf)
    st.append(
        [Entry(t, i + 1, EntryType.NORMAL, b"t%d-i%d" % (t, i + 1)) for i, t in enumerate(terms)]
    )
    if hard is not None:
        st.set_hard_state(hard)
    return st
