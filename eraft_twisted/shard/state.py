"""Which hash slots a shard group serves, as replicated state of the group.

In sharded mode (``--meta``) a group serves exactly the slots the cluster
config it has *applied through its own log* gives it, so ownership changes
are totally ordered with the writes around them. When a config moves
slots from group A to group B:

- A applies it: the slots are *outgoing* (frozen: no reads, no writes,
  clients get ``-MOVED`` to B); their data stays until B confirms it has it;
- B applies it: the slots are *incoming* (clients get ``-TRYAGAIN``); B's
  leader pulls the frozen data from A in chunks and proposes each chunk
  through B's log (the first chunk replaces whatever B had in the range),
  then an ``install done`` entry makes the slots owned. How far the copy
  got (the last key installed) is replicated too: a chunk applies only if
  it starts where the previous one ended, so a new leader resumes the copy
  and a deposed leader's late chunk changes nothing;
- B's leader then tells A, whose leader proposes deleting the range; until
  A acknowledges, B keeps re-telling (this list is replicated too).

The config number is the fence on every step: a chunk, a done marker or a
delete for a config other than the one recorded is ignored. A group
proposes config N+1 only after its incoming slots of N are installed.

Everything here is deterministic; the I/O lives in ``shard/migration.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict, TypeVar, cast

from ..hashslot import SLOTS, key_hash_slot
from ..kv.statemachine import OpError

T = TypeVar("T")


class ShardStateDict(TypedDict):
    """:class:`ShardState` as stored (msgpack) in the replicated state."""

    group: int
    num: int
    ranges: list[list[int]]
    groups: dict[str, list[str]]
    incoming: list[tuple[int, int, int]]
    outgoing: list[tuple[int, int, int]]
    notify: list[tuple[int, int, int]]
    copied: NotRequired[list[tuple[int, int, int, bytes]]]


def ranges_of(slots: Mapping[int, object] | AbstractSet[int]) -> list[tuple[int, int]]:
    """Contiguous ``(lo, hi)`` runs of the given slots (of equal value for a dict)."""
    out: list[tuple[int, int]] = []
    keys = sorted(slots)
    values = slots if isinstance(slots, Mapping) else None
    for s in keys:
        if out and out[-1][1] == s - 1 and (values is None or values[s] == values[out[-1][0]]):
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def owner_map(ranges: Iterable[Sequence[int]]) -> list[int]:
    """Slot -> owning group id (0 = unowned) from ``(lo, hi, group)`` ranges."""
    owners = [0] * SLOTS
    for lo, hi, gid in ranges:
        for s in range(lo, hi + 1):
            owners[s] = gid
    return owners


@dataclass
class ShardState:
    """The replicated sharding state of one group."""

    group: int = 0
    num: int = 0
    owners: list[int] = field(default_factory=lambda: [0] * SLOTS)
    groups: dict[int, list[str]] = field(default_factory=dict)
    incoming: dict[int, tuple[int, int]] = field(default_factory=dict)
    """slot -> (from group, config num): ours, data not installed yet."""
    outgoing: dict[int, tuple[int, int]] = field(default_factory=dict)
    """slot -> (to group, config num): not ours, data kept until confirmed."""
    notify: dict[int, tuple[int, int]] = field(default_factory=dict)
    """slot -> (from group, config num): installed; the old owner must be
    told it may delete."""
    copied: dict[tuple[int, int, int], bytes] = field(default_factory=dict)
    """(config num, lo, hi) -> the last key installed so far of an incoming
    run (absent: no chunk yet; b"": the first chunk was empty)."""
    _ranges: dict[tuple[str, int, int, int], object] = field(
        default_factory=dict, compare=False, repr=False
    )
    """Memo of :meth:`owner_ranges` / :meth:`served_ranges`. ``owners`` only
    changes with ``num`` and ``incoming`` only shrinks, so (group, num,
    len(incoming)) names one state."""

    # -- queries ---------------------------------------------------------
    def sharded(self) -> bool:
        return self.group != 0

    def check_key(self, key: bytes) -> OpError | None:
        """None if this group serves ``key`` now, else the refusal."""
        if not self.sharded():
            return None
        slot = key_hash_slot(key)
        return self.check_slot(slot)

    def check_slot(self, slot: int) -> OpError | None:
        """None if this group serves ``slot`` now, else -TRYAGAIN (arriving),
        -MOVED (to its owner) or -CLUSTERDOWN (nobody serves it)."""
        if not self.sharded():
            return None
        if slot in self.incoming:
            return OpError("TRYAGAIN", "slot is being migrated to this group; retry shortly")
        owner = self.owners[slot]
        if owner == self.group:
            return None
        servers = self.groups.get(owner) or []
        if not servers:
            return OpError("CLUSTERDOWN", f"hash slot {slot} is not served by any group")
        return OpError("MOVED", f"{slot} {servers[0]}")

    def served_until(self, start: int) -> int:
        """The first slot from ``start`` on that this group does not serve
        right now (16384 if it serves them all)."""
        if not self.sharded():
            return len(self.owners)
        owners, incoming, group = self.owners, self.incoming, self.group
        slot = start
        while slot < len(owners) and owners[slot] == group and slot not in incoming:
            slot += 1
        return slot

    def _memo(self, kind: str, compute: Callable[[], T]) -> T:
        key = (kind, self.group, self.num, len(self.incoming))
        cached = self._ranges.get(key)
        if cached is None:
            self._ranges.clear()
            cached = self._ranges[key] = compute()
        return cast(T, cached)

    def owner_ranges(self) -> list[tuple[int, int, int]]:
        """``(lo, hi, group)`` runs of the slot owners (group 0: nobody)."""
        return self._memo(
            "owners", lambda: [(lo, hi, g) for lo, hi, g in _owner_ranges(self.owners)]
        )

    def served_ranges(self) -> list[tuple[int, int]]:
        """The ``(lo, hi)`` slot runs this group serves right now."""
        if not self.sharded():
            return [(0, SLOTS - 1)]

        def compute() -> list[tuple[int, int]]:
            out: list[tuple[int, int]] = []
            for lo, hi, gid in self.owner_ranges():
                if gid != self.group:
                    continue
                slot = lo
                while slot <= hi:
                    if slot in self.incoming:
                        slot += 1
                        continue
                    end = min(hi + 1, self.served_until(slot))
                    out.append((slot, end - 1))
                    slot = end
            return out

        return self._memo("served", compute)

    def slots_served(self) -> int:
        """How many slots this group serves right now."""
        return sum(hi - lo + 1 for lo, hi in self.served_ranges())

    # -- transitions (deterministic, applied through the log) -------------
    def apply_config(self, group: int, config: Mapping[str, Any]) -> bool:
        """Move to ``config`` (the meta group's ``num``, ``groups`` and
        ``ranges``) if it is the next one; False if ignored."""
        num = int(config["num"])
        if self.group and group != self.group:
            return False
        if num != self.num + 1 or self.incoming:
            return False
        new_owners = owner_map(config["ranges"])
        for s in range(SLOTS):
            old, new = self.owners[s], new_owners[s]
            if new == group and old != group:
                self.outgoing.pop(s, None)  # our stale copy gets replaced by the pull
                if old != 0:  # a slot nobody owned has no data to fetch
                    self.incoming[s] = (old, num)
            elif old == group and new != group:
                self.outgoing[s] = (new, num)
        self.group = group
        self.num = num
        self.copied = {}
        self.owners = new_owners
        self.groups = {int(g): list(servers) for g, servers in config["groups"].items()}
        return True

    def chunk_allowed(self, num: int, lo: int, hi: int) -> bool:
        """Whether an installed chunk for slots lo..hi of config ``num`` applies."""
        return all(self.incoming.get(s, (0, -1))[1] == num for s in range(lo, hi + 1))

    def copy_position(self, num: int, lo: int, hi: int) -> bytes | None:
        """Where the copy of incoming run lo..hi of config ``num`` stands:
        None before the first chunk, else the last key installed."""
        return self.copied.get((num, lo, hi))

    def chunk_fits(self, num: int, lo: int, hi: int, after: bytes | None) -> bool:
        """Whether a chunk that starts after key ``after`` (None: the first
        chunk) is the next one of that copy."""
        return self.chunk_allowed(num, lo, hi) and self.copy_position(num, lo, hi) == after

    def chunk_installed(self, num: int, lo: int, hi: int, last: bytes) -> None:
        self.copied[(num, lo, hi)] = last

    def install_done(self, num: int, lo: int, hi: int) -> bool:
        if not self.chunk_allowed(num, lo, hi):
            return False
        self.copied.pop((num, lo, hi), None)
        for s in range(lo, hi + 1):
            src, n = self.incoming.pop(s)
            self.notify[s] = (src, n)
        return True

    def notified(self, num: int, lo: int, hi: int) -> None:
        for s in range(lo, hi + 1):
            if self.notify.get(s, (0, -1))[1] == num:
                del self.notify[s]

    def release(self, num: int, lo: int, hi: int) -> list[tuple[int, int]]:
        """The new owner has slots lo..hi of config ``num``: the slot runs
        whose data to delete here (only those still outgoing for ``num``)."""
        gone = {s for s in range(lo, hi + 1) if self.outgoing.get(s, (0, -1))[1] == num}
        for s in gone:
            del self.outgoing[s]
        return ranges_of(gone)

    def frozen_for(self, num: int, lo: int, hi: int) -> bool:
        """Whether this group has handed over slots lo..hi as of config ``num``
        (applied it, and not owning them now): safe to read them for a pull."""
        # Exactly while the range is outgoing for that config is its data
        # here and unchanging.
        return all(self.outgoing.get(s, (0, -1))[1] == num for s in range(lo, hi + 1))

    # -- persistence -------------------------------------------------------
    def to_dict(self) -> ShardStateDict:
        return {
            "group": self.group,
            "num": self.num,
            "ranges": _owner_ranges(self.owners),
            "groups": {str(g): s for g, s in self.groups.items()},
            "incoming": [(s, *v) for s, v in self.incoming.items()],
            "outgoing": [(s, *v) for s, v in self.outgoing.items()],
            "notify": [(s, *v) for s, v in self.notify.items()],
            "copied": [(*k, v) for k, v in self.copied.items()],
        }

    @classmethod
    def from_dict(cls, d: ShardStateDict) -> ShardState:
        st = cls(group=d["group"], num=d["num"], owners=owner_map(d["ranges"]))
        st.groups = {int(g): list(s) for g, s in d["groups"].items()}
        st.incoming = {s: (a, b) for s, a, b in d["incoming"]}
        st.outgoing = {s: (a, b) for s, a, b in d["outgoing"]}
        st.notify = {s: (a, b) for s, a, b in d["notify"]}
        st.copied = {(n, lo, hi): bytes(v) for n, lo, hi, v in d.get("copied", [])}
        return st

    def runs(self, table: dict[int, tuple[int, int]]) -> list[tuple[int, int, int, int]]:
        """``(lo, hi, group, num)`` runs of an incoming/outgoing/notify table."""
        return [(lo, hi, *table[lo]) for lo, hi in ranges_of(dict(table))]


def _owner_ranges(owners: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for s, g in enumerate(owners):
        if out and out[-1][2] == g and out[-1][1] == s - 1:
            out[-1][1] = s
        else:
            out.append([s, s, g])
    return out
