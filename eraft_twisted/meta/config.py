"""The cluster-config state machine: numbered configs of groups and slot ranges.

A *config* says which shard groups exist (group id -> server addresses) and
which group owns each of the 16384 hash slots, stored as contiguous ranges
``(lo, hi, group)`` (both ends inclusive) that together cover ``0..16383``;
group 0 means unowned. Every change makes a new config with the next
number and old configs stay queryable, like the 6.824 shard controller or
TiKV's PD. Config 0 is the empty cluster: no groups, every slot unowned.

Everything here is pure and deterministic (no I/O, no clock, no
randomness): each replica applying the same operations in the same order
gets the same configs. Errors are :class:`MetaError` subclasses carrying
the HTTP status the admin API answers with.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict, TypeGuard

from ..hashslot import MAX_SLOT, SLOTS

UNOWNED = 0
"""The owner of a slot no group owns."""

MAX_GROUP_ID = 2**31 - 1
MAX_SERVERS = 64
MAX_ADDRESS = 255

Range = tuple[int, int, int]
"""``(lo, hi, group)``: slots ``lo..hi`` (inclusive) belong to ``group``."""


class ConfigDict(TypedDict):
    """A config as plain data (JSON, msgpack): group ids as strings."""

    num: int
    groups: dict[str, list[str]]
    ranges: list[list[int]]
    migrations: NotRequired[list[dict[str, object]]]
    """Absent in configs written before online migration."""


class OpResult(TypedDict):
    """What a meta operation did: the config after it, whether it changed,
    and how many slots moved."""

    config: ConfigDict
    changed: bool
    moved: int


class MetaError(Exception):
    """A meta operation was refused; ``status`` is the HTTP status to answer."""

    status = 400


class BadRequest(MetaError):
    """Malformed arguments (400)."""

    status = 400


class UnknownConfig(MetaError):
    """No config with that number (404)."""

    status = 404


class Conflict(MetaError):
    """Well-formed but impossible in the current config, e.g. an unknown group (409)."""

    status = 409


def error_for_status(status: int, message: str) -> MetaError:
    """Rebuild the :class:`MetaError` subclass for ``status`` (after a round trip)."""
    cls = {404: UnknownConfig, 409: Conflict}.get(status, BadRequest)
    return cls(message)


@dataclass(frozen=True, eq=True)
class ClusterConfig:
    """One numbered cluster configuration (treat as immutable)."""

    num: int
    groups: Mapping[int, tuple[str, ...]]
    ranges: tuple[Range, ...]
    migrations: tuple[Mapping[str, object], ...] = ()
    """Slot ranges being moved between groups (filled in by online migration)."""
    _starts: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(r[0] for r in self.ranges))

    def owner(self, slot: int) -> int:
        """The group owning ``slot`` (0 if unowned)."""
        if not 0 <= slot <= MAX_SLOT:
            raise ValueError(f"slot {slot} out of range")
        return self.ranges[bisect_right(self._starts, slot) - 1][2]

    def owners(self) -> list[int]:
        """The owner of every slot, indexed by slot."""
        out: list[int] = []
        for lo, hi, gid in self.ranges:
            out.extend([gid] * (hi - lo + 1))
        return out

    def slot_counts(self) -> dict[int, int]:
        """Number of slots each group owns (every group listed, 0 included)."""
        counts = {gid: 0 for gid in self.groups}
        for lo, hi, gid in self.ranges:
            if gid != UNOWNED:
                counts[gid] += hi - lo + 1
        return counts

    def ranges_of(self, gid: int) -> list[tuple[int, int]]:
        """The slot ranges ``group`` owns, ascending."""
        return [(lo, hi) for lo, hi, g in self.ranges if g == gid]

    def to_dict(self) -> ConfigDict:
        """JSON- and msgpack-friendly form (group ids as strings)."""
        return {
            "num": self.num,
            "groups": {str(gid): list(servers) for gid, servers in sorted(self.groups.items())},
            "ranges": [list(r) for r in self.ranges],
            "migrations": [dict(m) for m in self.migrations],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClusterConfig:
        """Inverse of :meth:`to_dict`; raises ValueError if it is inconsistent."""
        groups = {int(gid): tuple(servers) for gid, servers in d["groups"].items()}
        cfg = cls(
            int(d["num"]),
            dict(sorted(groups.items())),
            tuple((int(lo), int(hi), int(g)) for lo, hi, g in d["ranges"]),
            tuple(dict(m) for m in d.get("migrations", ())),
        )
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise ValueError unless the ranges cover every slot exactly once,
        adjacent ranges have different owners and every owner is a group."""
        expect = 0
        prev = None
        for lo, hi, gid in self.ranges:
            if lo != expect or hi < lo:
                raise ValueError(f"config {self.num}: range {lo}-{hi} does not start at {expect}")
            if gid != UNOWNED and gid not in self.groups:
                raise ValueError(f"config {self.num}: slots {lo}-{hi} owned by unknown group {gid}")
            if gid == prev:
                raise ValueError(f"config {self.num}: adjacent ranges of group {gid} not merged")
            prev = gid
            expect = hi + 1
        if expect != SLOTS:
            raise ValueError(f"config {self.num}: ranges end at {expect - 1}, not {MAX_SLOT}")


def initial_config() -> ClusterConfig:
    """Config 0: no groups, every slot unowned."""
    return ClusterConfig(0, {}, ((0, MAX_SLOT, UNOWNED),))


def ranges_from_owners(owners: Sequence[int]) -> tuple[Range, ...]:
    """Merge a per-slot owner list into maximal ranges."""
    if len(owners) != SLOTS:
        raise ValueError(f"expected {SLOTS} owners, got {len(owners)}")
    ranges: list[Range] = []
    start = 0
    for slot in range(1, SLOTS + 1):
        if slot == SLOTS or owners[slot] != owners[start]:
            ranges.append((start, slot - 1, owners[start]))
            start = slot
    return tuple(ranges)


def moved_slots(old: ClusterConfig, new: ClusterConfig) -> int:
    """How many slots changed owner between two configs."""
    return sum(a != b for a, b in zip(old.owners(), new.owners(), strict=True))


# -- validation --------------------------------------------------------------------


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_group_id(gid: object) -> int:
    """A group id is an integer 1..2**31-1 (0 means "unowned")."""
    if not _is_int(gid) or not 1 <= gid <= MAX_GROUP_ID:
        raise BadRequest(f"group must be an integer between 1 and {MAX_GROUP_ID}, got {gid!r}")
    return int(gid)


def check_address(addr: object) -> str:
    """``host:port`` with a port 1..65535."""
    if not isinstance(addr, str) or len(addr) > MAX_ADDRESS:
        raise BadRequest(f"bad server address {addr!r}: expected host:port")
    host, sep, port = addr.rpartition(":")
    if (
        not sep
        or not host
        or any(c.isspace() or c == "," for c in host)
        or not port.isdigit()
        or not 0 < int(port) < 65536
    ):
        raise BadRequest(f"bad server address {addr!r}: expected host:port")
    return addr


def check_servers(servers: object) -> tuple[str, ...]:
    """A non-empty list of distinct ``host:port`` addresses."""
    if not isinstance(servers, list | tuple) or not servers:
        raise BadRequest("servers must be a non-empty list of host:port")
    if len(servers) > MAX_SERVERS:
        raise BadRequest(f"a group has at most {MAX_SERVERS} servers")
    out = tuple(check_address(s) for s in servers)
    if len(set(out)) != len(out):
        raise BadRequest("servers lists the same address twice")
    return out


def check_slot(slot: object, name: str) -> int:
    if not _is_int(slot) or not 0 <= slot <= MAX_SLOT:
        raise BadRequest(f"{name} must be a slot between 0 and {MAX_SLOT}, got {slot!r}")
    return int(slot)


# -- operations: each returns the next config, or ``cfg`` itself if nothing changes --


def _next(
    cfg: ClusterConfig, groups: Mapping[int, tuple[str, ...]], owners: Sequence[int]
) -> ClusterConfig:
    new = ClusterConfig(
        cfg.num + 1, dict(sorted(groups.items())), ranges_from_owners(owners), cfg.migrations
    )
    if new.groups == cfg.groups and new.ranges == cfg.ranges:
        return cfg
    return new


def join(cfg: ClusterConfig, gid: object, servers: object) -> ClusterConfig:
    """Add group ``gid`` with ``servers``, or update the servers of a known group.

    The first group to join a cluster without groups gets every slot; a
    later group gets none until a :func:`rebalance` or :func:`move`.
    Joining again with the same servers changes nothing (so retries and
    re-registration are harmless).
    """
    group = check_group_id(gid)
    members = check_servers(servers)
    for other, theirs in cfg.groups.items():
        taken = set(members) & set(theirs)
        if other != group and taken:
            raise Conflict(f"server {sorted(taken)[0]} already belongs to group {other}")
    groups = dict(cfg.groups)
    groups[group] = members
    owners = cfg.owners()
    if not cfg.groups:
        owners = [group] * SLOTS
    return _next(cfg, groups, owners)


def leave(cfg: ClusterConfig, gid: object) -> ClusterConfig:
    """Remove group ``gid``; its slots go to the remaining groups, the
    emptiest first. No other slot moves."""
    group = check_group_id(gid)
    if group not in cfg.groups:
        raise Conflict(f"unknown group {group}")
    groups = {g: s for g, s in cfg.groups.items() if g != group}
    owners = cfg.owners()
    released = [slot for slot, g in enumerate(owners) if g == group]
    if released and not groups:
        raise Conflict(f"group {group} is the last group: it cannot leave while it owns slots")
    counts = {g: c for g, c in cfg.slot_counts().items() if g != group}
    _assign(owners, released, _water_fill(counts, len(released)))
    return _next(cfg, groups, owners)


def move(cfg: ClusterConfig, lo: object, hi: object, gid: object) -> ClusterConfig:
    """Give slots ``lo..hi`` (inclusive) to group ``gid``."""
    first = check_slot(lo, "lo")
    last = check_slot(hi, "hi")
    if first > last:
        raise BadRequest(f"lo ({first}) must not be above hi ({last})")
    group = check_group_id(gid)
    if group not in cfg.groups:
        raise Conflict(f"unknown group {group}")
    owners = cfg.owners()
    owners[first : last + 1] = [group] * (last - first + 1)
    return _next(cfg, cfg.groups, owners)


def rebalance(cfg: ClusterConfig) -> ClusterConfig:
    """Spread the slots evenly over the groups, moving as few as possible.

    Each group's target is ``16384 // n`` slots, and the ``16384 % n``
    groups holding the most get one more (so they give away less). Groups
    above target release their highest slots; the released (and any
    unowned) slots go, ascending, to the groups below target in id order.
    The number of moved slots is the total excess, which is the minimum.
    """
    if not cfg.groups:
        return cfg
    counts = cfg.slot_counts()
    base, extra = divmod(SLOTS, len(counts))
    order = sorted(counts, key=lambda g: (-counts[g], g))
    target = {g: base + (1 if i < extra else 0) for i, g in enumerate(order)}
    excess = {g: max(0, counts[g] - target[g]) for g in counts}
    owners = cfg.owners()
    released: list[int] = []
    for slot in range(MAX_SLOT, -1, -1):
        g = owners[slot]
        if g not in counts:
            released.append(slot)
        elif excess[g] > 0:
            excess[g] -= 1
            released.append(slot)
    released.reverse()
    gains = {g: max(0, target[g] - counts[g]) for g in sorted(counts)}
    _assign(owners, released, gains)
    return _next(cfg, cfg.groups, owners)


def _water_fill(counts: Mapping[int, int], amount: int) -> dict[int, int]:
    """Hand ``amount`` slots out one at a time to the group holding the fewest
    (ties: lowest id); returns how many each group gains."""
    gains = {g: 0 for g in sorted(counts)}
    heap = [(c, g) for g, c in counts.items()]
    heapq.heapify(heap)
    for _ in range(amount):
        c, g = heapq.heappop(heap)
        gains[g] += 1
        heapq.heappush(heap, (c + 1, g))
    return gains


def _assign(owners: list[int], slots: Iterable[int], gains: Mapping[int, int]) -> None:
    """Give ``slots`` (in order) to groups in ``gains`` order, each its count."""
    it = iter(slots)
    for g, n in gains.items():
        for _ in range(n):
            owners[next(it)] = g
    if next(it, None) is not None:
        raise AssertionError("more slots released than assigned")


_ARITY = {"join": 2, "leave": 1, "move": 3, "rebalance": 0}


def validate_op(op: object) -> tuple[str, list[object]]:
    """Check an operation's shape and arguments without a config (so bad
    input can be refused before it reaches the log); returns (name, args)."""
    if not isinstance(op, list | tuple) or not op or not isinstance(op[0], str):
        raise BadRequest("malformed meta operation")
    name, args = op[0], list(op[1:])
    if name not in _ARITY:
        raise BadRequest(f"unknown meta operation {name!r}")
    if len(args) != _ARITY[name]:
        raise BadRequest(f"{name} takes {_ARITY[name]} arguments, got {len(args)}")
    if name == "join":
        check_group_id(args[0])
        check_servers(args[1])
    elif name == "leave":
        check_group_id(args[0])
    elif name == "move":
        lo, hi = check_slot(args[0], "lo"), check_slot(args[1], "hi")
        if lo > hi:
            raise BadRequest(f"lo ({lo}) must not be above hi ({hi})")
        check_group_id(args[2])
    return name, args


# -- the history of configs ----------------------------------------------------------------


class ConfigHistory:
    """Every config so far; :meth:`apply` runs one operation deterministically."""

    def __init__(self, configs: Iterable[ClusterConfig] = ()) -> None:
        self.configs: list[ClusterConfig] = [initial_config()]
        for cfg in configs:
            if cfg.num == 0:
                continue
            self.append(cfg)

    @property
    def latest(self) -> ClusterConfig:
        return self.configs[-1]

    def append(self, cfg: ClusterConfig) -> None:
        """Record the next config (its number must follow the latest's)."""
        if cfg.num != self.latest.num + 1:
            raise ValueError(f"config {cfg.num} does not follow config {self.latest.num}")
        self.configs.append(cfg)

    def query(self, num: int = -1) -> ClusterConfig:
        """Config ``num``, or the latest for -1; raises UnknownConfig."""
        if num == -1:
            return self.latest
        if not _is_int(num) or not 0 <= num < len(self.configs):
            raise UnknownConfig(f"no config {num} (latest is {self.latest.num})")
        return self.configs[num]

    def apply(self, op: Sequence[object]) -> tuple[ClusterConfig, OpResult]:
        """Run ``op`` against the latest config and record the result.

        ``op`` is ``["join", group, [servers]]``, ``["leave", group]``,
        ``["move", lo, hi, group]`` or ``["rebalance"]``. Returns the
        (possibly unchanged) latest config and a plain-data result
        ``{"config": ..., "changed": bool, "moved": slots}``. Raises
        MetaError, leaving the history unchanged.
        """
        name, args = validate_op(op)
        old = self.latest
        if name == "join":
            new = join(old, args[0], args[1])
        elif name == "leave":
            new = leave(old, args[0])
        elif name == "move":
            new = move(old, args[0], args[1], args[2])
        else:
            new = rebalance(old)
        changed = new is not old
        if changed:
            self.append(new)
        moved = moved_slots(old, new) if changed else 0
        return new, {"config": new.to_dict(), "changed": changed, "moved": moved}


__all__ = [
    "SLOTS",
    "UNOWNED",
    "BadRequest",
    "ClusterConfig",
    "ConfigHistory",
    "Conflict",
    "MetaError",
    "UnknownConfig",
    "error_for_status",
    "initial_config",
    "join",
    "leave",
    "move",
    "moved_slots",
    "validate_op",
    "ranges_from_owners",
    "rebalance",
]
