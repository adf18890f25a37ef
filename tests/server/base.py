"""A trial case over an in-process cluster (:func:`make_cluster`)."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.testing.cluster import Cluster, ClusterNode, make_cluster


class ClusterCase(SynchronousTestCase):
    """Each test gets a fresh cluster (``n`` nodes, ``groups`` sharded
    groups, ``options`` for every kv node) on its own clock."""

    n = 3
    groups = 0
    options: dict[str, Any] = {}

    def setUp(self) -> None:
        self.cluster: Cluster = make_cluster(None, self.n, groups=self.groups, **self.options)
        self.addCleanup(self.cluster.stop)

    def leader(self, group: int = 1) -> ClusterNode:
        return self.cluster.leader(group)

    def follower(self, group: int = 1) -> ClusterNode:
        return self.cluster.followers(group)[0]

    def nodes(self, group: int = 1) -> list[ClusterNode]:
        return [n for n in self.cluster.groups[group] if n.running]
