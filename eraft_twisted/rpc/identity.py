"""Group and cluster ids, and who may talk to whom.

Every Raft group has a *group id*, fixed when it is bootstrapped and kept
in each member's data directory (``layout.IDENTITY_KEY``, node-local, never
in a snapshot). The meta group's id is the *cluster id*. A kv group in
single-group mode has its own id; in sharded mode its id is
``<cluster id>/<group number>``. Every link opens with
:class:`~.commands.Identify`: a node refuses a peer of another group, and a
meta node refuses a kv node or router of another cluster (and they it).

Ids are derived, not random: every member of a new group computes the same
id from the ordered ``--peers`` list it is bootstrapped with (as etcd
derives its cluster id from ``--initial-cluster``). So the check holds from
the first election on, before anything could be replicated, and a node
bootstrapped with another list gets another id. A ``--join`` node learns
the id from the first member that answers; a sharded kv node derives it
from the cluster id its meta group tells it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol, TypedDict

import msgpack
from twisted.internet import defer
from twisted.logger import Logger

from ..storage import layout
from .commands import NotIdentified

log = Logger()

KV = "kv"
META = "meta"
ROUTER = "router"

PEER = "peer"
"""Link purpose: a member of the same Raft group (Raft messages, forwarding)."""
CLIENT = "client"
"""Link purpose: a kv node or router asking the meta group for configs."""


def derive_id(kind: str, peers: Sequence[str]) -> str:
    """The id of a ``kind`` group bootstrapped with ``peers`` (in order)."""
    text = "\n".join([f"eraft-{kind}", *peers])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sharded_group_id(cluster_id: str, group: int) -> str:
    """The id of kv group number ``group`` of a cluster."""
    return f"{cluster_id}/{group}"


def describe(kind: str, node: int, group: str, cluster: str) -> str:
    """``kv node 2 of group 1f2e...``: a party for log lines and errors."""
    if kind == META:
        return f"meta node {node} of cluster {cluster or '(unknown)'}"
    if kind == ROUTER:
        return f"router of cluster {cluster or '(not known yet)'}"
    return f"{kind} node {node} of group {group or '(not known yet)'}"


class IdentifyAnswer(TypedDict):
    """Who answered :class:`~.commands.Identify`."""

    kind: str
    node: int
    group: str
    cluster: str


class Hello(IdentifyAnswer):
    """The arguments of :class:`~.commands.Identify`: who calls, and why."""

    purpose: str


class LocalStore(Protocol):
    """Where a node keeps its ids: its storage's node-local keys."""

    @property
    def is_new(self) -> bool:
        """The data directory was just created."""
        ...

    def get_raw(self, db_key: bytes) -> bytes | None: ...

    def put_local(self, key: bytes, value: bytes) -> defer.Deferred[None]: ...


class IdentityError(Exception):
    """The data directory belongs to another kind of node or group."""


class Identity:
    """This process's ids on the wire; "" while not known yet."""

    def __init__(
        self,
        kind: str,
        node_id: int = -1,
        group_id: str = "",
        cluster_id: str = "",
        *,
        shard_group: int | None = None,
        learn: bool = False,
    ) -> None:
        self.kind = kind
        self.node_id = node_id
        self.group_id = group_id
        self.cluster_id = cluster_id
        self.shard_group = shard_group
        """The group number of a sharded kv node (its id follows the cluster id)."""
        self.learn = learn
        """Adopt the group id of the first peer that answers (``--join``)."""
        self.on_change: list[Callable[[Identity], None]] = []

    @property
    def known(self) -> bool:
        return bool(self.group_id)

    def describe(self) -> str:
        return describe(self.kind, self.node_id, self.group_id, self.cluster_id)

    def hello(self, purpose: str) -> Hello:
        """The arguments of :class:`~.commands.Identify` from this side."""
        return {"purpose": purpose, **self.answer()}

    def answer(self) -> IdentifyAnswer:
        """The answer to :class:`~.commands.Identify` from this side."""
        return {
            "kind": self.kind,
            "node": self.node_id,
            "group": self.group_id,
            "cluster": self.cluster_id,
        }

    def adopt(self, group_id: str, cluster_id: str, source: str) -> None:
        """Take ids learnt from ``source`` (a member, the meta group)."""
        if (group_id, cluster_id) == (self.group_id, self.cluster_id):
            return
        self.group_id, self.cluster_id, self.learn = group_id, cluster_id, False
        log.info("{me}: ids learnt from {source}", me=self.describe(), source=source)
        for cb in list(self.on_change):
            cb(self)

    def learn_cluster(self, cluster_id: str, source: str) -> None:
        """The meta group told us its cluster id (first contact only)."""
        if self.cluster_id or not cluster_id:
            return
        group = self.group_id
        if not group and self.shard_group is not None:
            group = sharded_group_id(cluster_id, self.shard_group)
        self.adopt(group, cluster_id, source)

    def info_fields(self) -> list[tuple[str, str]]:
        """``raft_group_id`` / ``raft_cluster_id`` for RAFT.INFO."""
        no_cluster = "unknown" if self.shard_group is not None else "none"
        return [
            ("raft_group_id", self.group_id or "unknown"),
            ("raft_cluster_id", self.cluster_id or no_cluster),
        ]


def as_identity(value: Identity | str) -> Identity:
    """An Identity, or a bare group id (tests, embedders) as a kv identity."""
    return value if isinstance(value, Identity) else Identity(KV, group_id=value)


def refusal(own: Identity, hello: Hello) -> str | None:
    """Why ``own`` refuses the link ``hello`` opens (None: accepted); raises
    NotIdentified while ``own`` cannot tell yet."""
    them = describe(hello["kind"], hello["node"], hello["group"], hello["cluster"])
    me = own.describe()
    if hello["purpose"] == CLIENT:
        if own.kind != META:
            return f"{me} is not a meta node, yet {them} uses it as one"
        if hello["cluster"] and hello["cluster"] != own.cluster_id:
            return f"{me} refuses {them}: another cluster"
        return None
    if hello["purpose"] != PEER:
        return f"{me} refuses {them}: unknown link purpose {hello['purpose']!r}"
    if not own.known:
        raise NotIdentified(f"{me} does not know its group id yet")
    if hello["kind"] != own.kind:
        return f"{me} refuses {them}: a {hello['kind']} node is no peer of a {own.kind} node"
    # "": a --join node that is still learning the id; it is no member yet.
    if hello["group"] and hello["group"] != own.group_id:
        return f"{me} refuses {them}: another group"
    if hello["cluster"] and own.cluster_id and hello["cluster"] != own.cluster_id:
        return f"{me} refuses {them}: another cluster"
    return None


def answer_problem(own: Identity, answer: IdentifyAnswer, purpose: str) -> str | None:
    """Why the side that called Identify refuses the receiver's ``answer``."""
    them = describe(answer["kind"], answer["node"], answer["group"], answer["cluster"])
    if purpose == CLIENT:
        if answer["kind"] != META:
            return f"{them} is not a meta node"
        if own.cluster_id and answer["cluster"] != own.cluster_id:
            return f"{them} is not in the cluster of {own.describe()}"
        return None
    if answer["kind"] != own.kind or (own.group_id and answer["group"] != own.group_id):
        return f"{them} is not in the group of {own.describe()}"
    return None


class Refusals:
    """Logs each distinct refusal once: a refused peer keeps reconnecting."""

    def __init__(self) -> None:
        self.seen: set[Hashable] = set()

    def report(self, key: Hashable, text: str) -> None:
        if key not in self.seen:
            self.seen.add(key)
            log.error("{text}", text=text)

    def forget(self, key: Hashable) -> None:
        self.seen.discard(key)


# -- persistence ----------------------------------------------------------------


def save_identity(storage: LocalStore, ident: Identity) -> defer.Deferred[None]:
    """Write the ids to the node's data directory (synced)."""
    value = layout.pack({"kind": ident.kind, "group": ident.group_id, "cluster": ident.cluster_id})
    d = storage.put_local(layout.IDENTITY_KEY, value)
    return d.addErrback(lambda f: log.failure("persisting the group id failed", f))


def load_identity(
    storage: LocalStore,
    kind: str,
    node_id: int,
    peers: Sequence[str],
    *,
    join: bool = False,
    shard_group: int | None = None,
) -> Identity:
    """The node's ids: as stored, else new ones (derived from ``peers``,
    learnt from the group with ``join``, or from the meta group with
    ``shard_group``); later changes are persisted. Raises IdentityError if
    the data directory belongs to another kind of node or group."""
    raw = storage.get_raw(layout.IDENTITY_KEY)
    if raw is not None:
        stored = msgpack.unpackb(raw, raw=False)
        ident = Identity(kind, node_id, stored["group"], stored["cluster"], shard_group=shard_group)
        _check_stored(stored, kind, shard_group)
    elif shard_group is not None:
        ident = Identity(kind, node_id, shard_group=shard_group)
    elif join:
        ident = Identity(kind, node_id, learn=True)
    else:
        gid = derive_id(kind, peers)
        ident = Identity(kind, node_id, gid, gid if kind == META else "")
        if not storage.is_new:
            # Written by a version without ids: adopt the one the group
            # was bootstrapped with, derived from the same --peers.
            log.info("no group id stored yet: adopting {g}, derived from --peers", g=gid)
        save_identity(storage, ident)
    ident.on_change.append(lambda i: _save(storage, i))
    return ident


def _save(storage: LocalStore, ident: Identity) -> None:
    save_identity(storage, ident)


def _check_stored(stored: Mapping[str, Any], kind: str, shard_group: int | None) -> None:
    if stored["kind"] != kind:
        raise IdentityError(f"the data directory belongs to a {stored['kind']} node")
    group = stored["group"]
    if shard_group is not None and stored["cluster"] and "/" in group:
        number = group.rsplit("/", 1)[1]
        if number != str(shard_group):
            raise IdentityError(
                f"the data directory belongs to group {number} ({group}), not --group {shard_group}"
            )
