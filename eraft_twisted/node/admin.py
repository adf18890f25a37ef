"""Membership changes and leadership transfer of a Raft group, through
whichever member leads (a follower forwards them over the peer link).

Part of :class:`~eraft_twisted.node.driver.RaftNode`'s job kept apart: it
uses the node's package-internal helpers (timeouts, waiting for a leader).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer
from twisted.logger import Logger

from ..raft.types import NONE, ConfChange, ConfChangeType, RaftError
from ..rpc.commands import ChangeMembership, TransferLeader
from .errors import REJOIN, RaftTimeout, RaftUnavailable

if TYPE_CHECKING:
    from .driver import RaftNode

log = Logger()

T = TypeVar("T")


class GroupAdmin:
    """Membership changes and leadership transfer for one node."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node

    def _via_leader(
        self,
        local: Callable[[], defer.Deferred[T]],
        forward: Callable[[int], defer.Deferred[T]],
        what: str,
    ) -> defer.Deferred[T]:
        """``local()`` if this node leads, else ``forward(leader)``; with no
        leader known (an election or a transfer under way) wait for one, as
        a write does, up to the request timeout."""
        node = self.node
        if node.is_leader:
            return local()
        if node.raw is None or node.transport is None:
            return defer.fail(RaftUnavailable("node not started"))
        if node.leader != NONE:
            return forward(node.leader)
        d = node._with_timeout(self._until_leader_known(), what)
        return d.addCallback(lambda _: self._via_leader(local, forward, what))

    @defer.inlineCallbacks
    def _until_leader_known(self) -> Generator[defer.Deferred[None], None, None]:
        node = self.node
        while node.leader == NONE:
            if node._stopped:
                raise RaftUnavailable("node is shutting down")
            yield node._wait_leader()

    def change_membership(self, kind: int, node_id: int, address: str) -> defer.Deferred[int]:
        """Add a learner (``ADD_LEARNER``), promote/add a voter or remove a
        member, through the leader; fires with the change's log index once
        applied. ``address`` is the member's peer address (for adds).
        ``REJOIN`` re-admits a node that lost its data (see :data:`REJOIN`)."""
        node = self.node

        def forward(leader: int) -> defer.Deferred[int]:
            assert node.transport is not None
            d = node.transport.call(
                leader, ChangeMembership, kind=kind, node_id=node_id, address=address
            )
            return d.addCallback(lambda r: r["index"])

        if kind == REJOIN:
            return self._via_leader(lambda: self._rejoin(node_id, address), forward, "rejoin")
        cc = ConfChange(ConfChangeType(kind), node_id, address.encode())

        def local() -> defer.Deferred[int]:
            if cc.type != ConfChangeType.REMOVE and address:
                for cb in node.on_member_address:
                    cb(node_id, address)
            index = node.raw.raft.log.last_index() + 1 if node.raw else 0
            return node.propose_conf_change(cc).addCallback(lambda _: index)

        return self._via_leader(local, forward, "membership change")

    @defer.inlineCallbacks
    def _rejoin(self, nid: int, address: str) -> Generator[defer.Deferred[Any], Any, int]:
        """On the leader: make ``nid`` a learner with no acknowledgement on
        record, so it catches up from nothing before it is promoted."""
        node = self.node
        assert node.raw is not None
        raft = node.raw.raft
        pr = raft.prs.get(nid)
        if nid in raft.conf.learners and pr is not None and pr.match == 0:
            return raft.conf_index()  # already re-added (a retried request)
        if nid == node.node_id:
            raise RaftError("the leader cannot rejoin its own group")
        if nid in raft.conf.members():
            log.warn(
                "node {nid} lost its data and asks to rejoin: removing it, "
                "then adding it back as a learner",
                nid=nid,
            )
            yield node.propose_conf_change(ConfChange(ConfChangeType.REMOVE, nid))
        index = yield self.change_membership(int(ConfChangeType.ADD_LEARNER), nid, address)
        return index

    def transfer_leadership(self, target: int = NONE) -> defer.Deferred[int]:
        """Hand leadership to ``target`` (or the most up-to-date follower);
        fires with the new leader's id, or fails if it did not move within
        two election timeouts (the old leader then carries on)."""
        node = self.node

        def forward(leader: int) -> defer.Deferred[int]:
            assert node.transport is not None
            d = node.transport.call(leader, TransferLeader, target=target)
            return d.addCallback(lambda r: r["leader"])

        return self._via_leader(
            lambda: self._transfer_from_here(target), forward, "leadership transfer"
        )

    def _transfer_from_here(self, target: int) -> defer.Deferred[int]:
        node = self.node
        assert node.raw is not None
        raft = node.raw.raft
        voters = [v for v in raft.conf.voters if v != node.node_id]
        if target == NONE:
            if not voters:
                return defer.fail(RaftUnavailable("no other voter to transfer to"))
            target = max(voters, key=lambda v: raft.prs[v].match if v in raft.prs else -1)
        if target == node.node_id:
            return defer.succeed(target)
        if target not in voters:
            return defer.fail(RaftError(f"node {target} is not a voter"))
        node.raw.transfer_leader(target)
        node._schedule()
        return self._await_leader_other_than(node.node_id, 2 * node.config.election_tick)

    @defer.inlineCallbacks
    def _await_leader_other_than(
        self, old: int, ticks: int
    ) -> Generator[defer.Deferred[None], None, int]:
        node = self.node
        for _ in range(ticks * 2):
            yield node._sleep(node.tick_interval / 2)
            leader = node.leader
            if leader not in (old, NONE):
                return leader
        raise RaftTimeout("leadership transfer did not complete; the old leader resumed")
