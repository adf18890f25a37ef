"""Writes proposed on a follower go to the leader over the peer link; the
leader's side answers them. Part of :class:`~eraft_twisted.node.driver.RaftNode`
kept apart: it uses the node's package-internal helpers (timeouts, sleeping,
waiting for a leader)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..raft.types import NONE, ProposalDropped, RaftError
from ..rpc.codec import decode_result, encode_result
from ..rpc.commands import LeaderUnreachable, NotLeaderError, ProposalFailed
from .errors import ProposalLost, RaftTimeout, RaftUnavailable

if TYPE_CHECKING:
    from .driver import RaftNode

log = Logger()


class Forwarding:
    """One node's side of write forwarding, as follower and as leader."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node

    @defer.inlineCallbacks
    def propose(self, data: bytes) -> Generator[defer.Deferred[Any], Any, Any]:
        """Until it is in a leader's log: proposed here while this node leads,
        else forwarded; a forward that failed after it may have been appended
        is a :class:`RaftTimeout` (never sent twice)."""
        node = self.node
        while True:
            if node._stopped or node.raw is None:
                raise RaftUnavailable("node is shutting down")
            if node.is_leader:
                try:
                    d = node.propose_local(data)
                except ProposalDropped:  # e.g. a leadership transfer: not appended
                    yield node._sleep(node.tick_interval)
                    continue
                return (yield d)
            leader = node.leader
            if leader != NONE and node.transport is not None:
                try:
                    result = yield node.transport.forward_propose(leader, data)
                except (NotLeaderError, LeaderUnreachable) as e:
                    # Certainly not in the log: safe to try again.
                    log.debug("forward to {leader} refused: {e}", leader=leader, e=e)
                    yield node._sleep(node.tick_interval)
                    continue
                except Exception as e:
                    # The leader may have appended it; sending it again could
                    # apply it twice, so the outcome is unknown to the client.
                    raise RaftTimeout(
                        f"write forwarded to node {leader} failed ({e}); "
                        "it may or may not have been applied",
                        leader,
                    ) from e
                return decode_result(result)
            yield node._wait_leader()

    def answer(self, data: bytes) -> defer.Deferred[bytes]:
        """A follower forwarded a client write to us (the AMP responder's
        answer: the encoded result, or an error saying whether it may retry)."""
        node = self.node
        if not node.is_leader:
            return defer.fail(NotLeaderError(str(node.leader)))
        try:
            d = node.propose_local(data)
        except RaftError as e:  # not appended: the follower may retry
            return defer.fail(NotLeaderError(str(e)))
        d = node._with_timeout(d, "write")

        def failed(f: Failure) -> bytes:
            if f.check(ProposalLost):
                raise NotLeaderError(str(f.value))
            raise ProposalFailed(str(f.value))

        return d.addCallbacks(encode_result, failed)
