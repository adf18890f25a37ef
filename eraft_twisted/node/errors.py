"""What a Raft node's requests can fail with, and the rejoin request kind."""

from __future__ import annotations

from ..raft.types import NONE

__all__ = ["REJOIN", "ProposalLost", "RaftTimeout", "RaftUnavailable"]

REJOIN = 100
"""A ``change_membership`` kind: (re-)admit a node whose log is empty as a new
learner, first removing it if it is still a member (it lost its data)."""


class RaftUnavailable(Exception):
    """The group cannot serve the request now (no leader, no quorum, timeout)."""

    def __init__(self, message: str, leader: int = NONE) -> None:
        super().__init__(message)
        self.leader = leader


class RaftTimeout(RaftUnavailable):
    """The request was not confirmed in time; a write may or may not apply."""


class ProposalLost(RaftUnavailable):
    """Another leader's entry took the proposal's place: it never applies."""
