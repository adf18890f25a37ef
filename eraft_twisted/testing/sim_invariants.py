"""Raft's safety properties, checked after every input to every simulated node.

:class:`SafetyChecker` keeps the history of the whole cluster (who led
which term, the committed log, what was applied where, every read) and
raises a :class:`~.sim_types.Violation` the moment a property fails:

- Election Safety: at most one leader per term, over the whole history;
- Log Matching, on persisted logs: an (index, term) pair always has the
  same content and the same predecessor term, hence identical prefixes;
- Leader Completeness: a leader holds every entry committed in earlier terms;
- a leader's commit index only moves to an entry of its own term (§5.4.2);
- committed entries never change; commit never goes back (until a crash);
  applied <= committed;
- State Machine Safety: every node applies the same entry at each index,
  each index exactly once and in order; a proposal is applied at most once;
  a snapshot carries exactly the state applied at its index;
- reads: the index a read is answered with covers everything committed
  before the read was issued, the answering leader's term is at least that
  of every leader elected before it (no answer from a deposed, isolated
  leader), and the read is served only once that index is applied;
- the membership in use is the last one in the node's log;
- Durability: no node finds that it lost entries it acknowledged (the
  core halts such a node), whatever power cuts it went through.
"""

from __future__ import annotations

import hashlib
import struct

from ..raft.confchange import decode_conf_change
from ..raft.rawnode import RawNode
from ..raft.types import ConfState, Entry, EntryType, Message, Role, Snapshot
from .powercut import ZERO
from .sim_types import PendingRead, SimContext, SimNode, decode_snapshot


def _running(n: SimNode) -> RawNode:
    raw = n.raw
    assert raw is not None, f"node {n.id} is down"
    return raw


class SafetyChecker:
    """The cluster's history, and every safety check against it."""

    def __init__(self, ctx: SimContext, conf: ConfState) -> None:
        self.ctx = ctx
        self.leaders: dict[int, int] = {}
        """term -> the node that led it."""
        self.max_leader_term = 0
        self.committed_terms: list[int] = [0]
        """The term of every committed index (index 0 is a placeholder)."""
        self.commit_by_term: dict[int, int] = {}
        """term -> the highest index committed by a leader of that term."""
        self.chain: list[bytes] = [ZERO]
        """The state machine's digest after applying each index."""
        self.applied: list[tuple[int, int, bytes]] = [(0, 0, b"")]
        """(term, type, data) applied at each index."""
        self.entries_seen: dict[tuple[int, int], tuple[int, bytes, int | None]] = {}
        self.data_index: dict[bytes, int] = {}
        self.reads: dict[bytes, PendingRead] = {}
        self.committed_conf = conf

    # -- reads ---------------------------------------------------------------
    def read_issued(self, n: SimNode, ctx: bytes) -> None:
        """Remember what a read issued now on ``n`` must see."""
        self.reads[ctx] = PendingRead(
            n.id, n.incarnation, len(self.committed_terms) - 1, self.max_leader_term
        )

    def read_answered(self, n: SimNode, ctx: bytes, index: int, term: int) -> None:
        """A read index for ``ctx`` came back on ``n`` from a leader of ``term``."""
        rd = self.reads.get(ctx)
        if rd is None:
            raise self.ctx.fail(f"node {n.id} got an answer for unknown read {ctx!r}")
        if rd.node != n.id:
            raise self.ctx.fail(f"node {n.id} got the answer to node {rd.node}'s read {ctx!r}")
        rd.answers += 1
        if index < rd.commit_at_issue:
            raise self.ctx.fail(
                f"stale read {ctx!r} on node {n.id}: read index {index} < {rd.commit_at_issue} "
                "committed before the read was issued"
            )
        if term < rd.leader_term_at_issue:
            raise self.ctx.fail(
                f"read {ctx!r} on node {n.id} answered by a leader of term {term} although a "
                f"leader of term {rd.leader_term_at_issue} was elected before it was issued"
            )

    def serve_reads(self, n: SimNode) -> None:
        """Serve the reads of ``n`` whose index is applied."""
        if not n.reads:
            return
        still = []
        for index, ctx in n.reads:
            if n.sm_index >= index:
                rd = self.reads[ctx]
                if rd.incarnation == n.incarnation:
                    if n.sm_index < rd.commit_at_issue:
                        raise self.ctx.fail(f"read {ctx!r} served before applying what it must see")
                    self.ctx.stats.reads_served += 1
            else:
                still.append((index, ctx))
        n.reads = still

    # -- the state machine -----------------------------------------------------
    def install(self, n: SimNode, snap: Snapshot) -> None:
        """``n`` installs ``snap``: it must hold a state that was applied at its index."""
        index, digest = decode_snapshot(snap)
        fail = self.ctx.fail
        if index != snap.meta.index:
            raise fail(f"node {n.id}: snapshot meta {snap.meta.index} carries state {index}")
        if index >= len(self.chain) or self.chain[index] != digest:
            raise fail(f"node {n.id}: snapshot at {index} holds a state never applied there")
        if index <= n.sm_index:
            raise fail(f"node {n.id}: snapshot {index} would move state back from {n.sm_index}")
        n.sm_index, n.sm_hash = index, digest
        self.ctx.stats.snapshots_installed += 1

    def apply(self, n: SimNode, e: Entry) -> None:
        """``n`` applies ``e``: in order, committed, and the same entry everywhere."""
        fail = self.ctx.fail
        if e.index != n.sm_index + 1:
            raise fail(f"node {n.id} applied {e.index} right after {n.sm_index}")
        committed = _running(n).raft.log.committed
        if e.index > committed:
            raise fail(f"node {n.id} applies {e.index} beyond commit {committed}")
        rec = (e.term, int(e.type), e.data)
        if e.index < len(self.applied):
            if self.applied[e.index] != rec:
                raise fail(
                    f"State Machine Safety: node {n.id} applied {rec[:2]} at {e.index}, "
                    f"another node applied {self.applied[e.index][:2]}"
                )
            n.sm_hash = self.chain[e.index]
        else:
            if e.index != len(self.applied):
                raise fail(f"node {n.id} applied {e.index} with a gap")
            self._first_apply(n, e, rec)
        n.sm_index = e.index

    def _first_apply(self, n: SimNode, e: Entry, rec: tuple[int, int, bytes]) -> None:
        h = hashlib.blake2b(n.sm_hash, digest_size=8)
        h.update(struct.pack(">qqq", e.index, e.term, int(e.type)))
        h.update(e.data)
        self.applied.append(rec)
        self.chain.append(h.digest())
        n.sm_hash = self.chain[e.index]
        self.ctx.stats.committed = e.index
        if e.type == EntryType.NORMAL and e.data:
            prev = self.data_index.setdefault(e.data, e.index)
            if prev != e.index:
                raise self.ctx.fail(f"proposal {e.data!r} applied twice: at {prev} and {e.index}")
        elif e.type == EntryType.CONF_CHANGE:
            self.ctx.stats.conf_changes += 1
            cc, conf = decode_conf_change(e.data)
            self.committed_conf = conf
            self.ctx.note(f"applied {cc.type.name} {cc.node_id} at {e.index}: {conf}")

    # -- logs ------------------------------------------------------------------
    def check_persisted(self, n: SimNode, entries: list[Entry]) -> None:
        """Log Matching, incrementally: (index, term) fixes content and predecessor term."""
        st = n.storage
        floor = st.first_index() - 1
        seen = self.entries_seen
        for e in entries:
            if e.index <= floor:
                continue
            prev = st.term(e.index - 1)
            rec = (int(e.type), e.data, prev)
            old = seen.get((e.index, e.term))
            if old is None:
                seen[(e.index, e.term)] = rec
            elif old[:2] != rec[:2] or (old[2] is not None and old[2] != prev):
                raise self.ctx.fail(
                    f"Log Matching: node {n.id} persisted ({e.index}, {e.term}) = "
                    f"{rec[:2]!r} after term {prev}; elsewhere {old[:2]!r} after term {old[2]}"
                )

    def check_snapshot_meta(self, n: SimNode, snap: Snapshot) -> None:
        """A received snapshot ends at an entry of the committed log."""
        i, t = snap.meta.index, snap.meta.term
        if i >= len(self.committed_terms):
            raise self.ctx.fail(f"node {n.id} installs snapshot {i} beyond global commit")
        if self.committed_terms[i] != t:
            raise self.ctx.fail(
                f"node {n.id} installs snapshot ({i}, {t}) not in the committed log"
            )

    def check_node(self, n: SimNode, m: Message | None, synced: bool = False) -> None:
        """Every per-node property, after ``n`` took an input (``m``, or a tick or call)."""
        raw = _running(n)
        r = raw.raft
        # The core halts a node that finds it lost entries it acknowledged:
        # with every sync done, no power cut may cause that. (getattr: a core
        # without that detection has nothing to report.)
        halted = getattr(r, "halted", "")
        if halted:
            raise self.ctx.fail(f"Durability: {halted}")
        term = r.term
        if term > self.ctx.stats.max_term:
            self.ctx.stats.max_term = term
        if r.role == Role.LEADER:
            self._check_leader(n, raw)
        elif n.was_leader:
            n.was_leader = False
            self.ctx.note(f"node {n.id} steps down in term {term} ({r.role.name})")
        self._check_commit(n, raw, synced)
        c = r.log.committed
        if r.log.applied > c or n.sm_index > c:
            raise self.ctx.fail(
                f"node {n.id}: applied {r.log.applied}/{n.sm_index} beyond commit {c}"
            )
        n.checks += 1
        if n.checks % 64 == 0:
            self.check_conf(n)

    def _check_leader(self, n: SimNode, raw: RawNode) -> None:
        """Election Safety, and what a new leader must hold."""
        term = raw.term
        who = self.leaders.setdefault(term, n.id)
        if who != n.id:
            raise self.ctx.fail(f"Election Safety: nodes {who} and {n.id} both lead term {term}")
        if not n.was_leader:
            n.was_leader = True
            self.ctx.stats.leaders += 1
            self.ctx.mix(7, n.id, term)
            self.ctx.note(f"node {n.id} leads term {term} conf {raw.conf}")
            if term > self.max_leader_term:
                self.max_leader_term = term
            self.check_conf(n)
        self.check_leader_complete(n)

    def _check_commit(self, n: SimNode, raw: RawNode, synced: bool) -> None:
        """Commit is monotonic, §5.4.2 holds, and committed entries never change."""
        r = raw.raft
        log = r.log
        term = r.term
        c = log.committed
        if c < n.last_commit:
            raise self.ctx.fail(f"node {n.id}: commit index went back from {n.last_commit} to {c}")
        if c > log.last_index():
            raise self.ctx.fail(f"node {n.id}: commit {c} beyond last index {log.last_index()}")
        if not synced and log.unstable.entries and c >= log.unstable.offset:
            # A lone voter counts its entries before it wrote them; nothing
            # shows that commit until its Ready synced them: check it then.
            c = n.last_commit
            n.commit_deferred = True
        if c <= n.last_commit:
            return
        if r.role == Role.LEADER and log.term(c) != term:
            raise self.ctx.fail(
                f"leader {n.id} of term {term} committed {c} of term {log.term(c)}: "
                "only an entry of the leader's own term is committed by counting (§5.4.2)"
            )
        ct = self.committed_terms
        grew = False
        for i in range(max(n.last_commit + 1, log.first_index() - 1), c + 1):
            t = log.term(i)
            if i < len(ct):
                if ct[i] != t:
                    raise self.ctx.fail(
                        f"committed entry changed: node {n.id} has term {t} at {i}, "
                        f"committed term there is {ct[i]}"
                    )
            elif i == len(ct):
                ct.append(t)
                grew = True
            else:
                raise self.ctx.fail(f"node {n.id} committed {c} past a gap at {len(ct)}")
        n.last_commit = c
        if grew:
            self.commit_by_term[term] = max(self.commit_by_term.get(term, 0), c)
            for other in self.ctx.live():
                if other is not n and _running(other).role == Role.LEADER:
                    self.check_leader_complete(other)

    def check_leader_complete(self, n: SimNode) -> None:
        """Every entry committed in an earlier term is in this leader's log."""
        raw = _running(n)
        term = raw.term
        c = 0
        for t, idx in self.commit_by_term.items():
            if t < term and idx > c:
                c = idx
        if c == 0:
            return
        log = raw.raft.log
        if c < log.first_index() - 1:
            return
        if c > log.last_index() or log.term(c) != self.committed_terms[c]:
            raise self.ctx.fail(
                f"Leader Completeness: leader {n.id} of term {term} lacks committed entry {c} "
                f"(term {self.committed_terms[c]}); it has term {log.term(c)} there"
            )

    def check_conf(self, n: SimNode) -> None:
        """The membership in use is the one in the last conf entry of the log."""
        raw = _running(n)
        log = raw.raft.log
        want: ConfState | None = None
        for e in reversed(log.all_entries()):
            if e.type == EntryType.CONF_CHANGE:
                want = decode_conf_change(e.data)[1]
                break
        if want is None:
            snap = log.snapshot()
            want = n.storage.initial_state()[1] if snap.is_empty() else snap.meta.conf
        if want is not None and want != raw.conf:
            raise self.ctx.fail(f"node {n.id} uses membership {raw.conf}, its log says {want}")
        if raw.role == Role.LEADER and set(raw.raft.prs) != set(raw.conf.members()):
            raise self.ctx.fail(f"leader {n.id} tracks {sorted(raw.raft.prs)} not {raw.conf}")
