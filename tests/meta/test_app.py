"""MetaApplication over LevelDBStorage.in_memory: apply, restart, snapshots."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import task
from twisted.trial import unittest

from eraft_twisted.meta.app import MetaApplication, config_key, decode_op, encode_op
from eraft_twisted.meta.config import BadRequest, ClusterConfig
from eraft_twisted.node.driver import RaftNode
from eraft_twisted.raft.confchange import encode_conf_change
from eraft_twisted.raft.core import Config
from eraft_twisted.raft.types import ConfChange, ConfChangeType, ConfState, Entry, EntryType
from eraft_twisted.storage.leveldb import LevelDBStorage
from eraft_twisted.storage.memorydb import MemoryDB

CONF = ConfState((0,))


def entries(start: int, *ops: tuple[Any, ...]) -> list[Entry]:
    return [Entry(1, start + i, EntryType.NORMAL, encode_op(*op)) for i, op in enumerate(ops)]


class MetaApplicationTests(unittest.TestCase):
    def setUp(self) -> None:
        self.db = MemoryDB()
        self.storage = LevelDBStorage.in_memory(CONF, db=self.db)
        self.app = MetaApplication(self.storage)

    def apply(self, ents: list[Entry], conf: ConfState | None = None, app: Any = None) -> list[Any]:
        """Log the entries (apply_ops takes the applied term from the log), then apply."""
        app = app or self.app
        self.successResultOf(app.storage.persist(ents, None))
        return app.apply_batch(ents, conf)  # type: ignore[no-any-return]

    def restart(self) -> MetaApplication:
        self.storage = LevelDBStorage.in_memory(db=self.db)
        return MetaApplication(self.storage)

    def test_apply_results_and_persisted_configs(self) -> None:
        results = self.apply(
            entries(
                1,
                ("join", 1, ["a:1", "a:2"]),
                ("join", 2, ["b:1"]),
                ("rebalance",),
                ("leave", 9),
                ("move", 0, 9, 2),
            ),
            None,
        )
        self.assertEqual([r.get("changed") for r in results[:3]], [True, True, True])
        self.assertEqual(results[2]["moved"], 8192)
        self.assertEqual(results[3], {"error": "unknown group 9", "status": 409})
        self.assertEqual(results[4]["config"]["num"], 4)
        self.assertEqual(self.storage.applied_index(), 5)
        self.assertIsNotNone(self.storage.get_raw(config_key(4)))
        self.assertIsNone(self.storage.get_raw(config_key(5)))
        self.assertEqual(self.app.history.latest.ranges_of(2), [(0, 9), (8192, 16383)])

    def test_bad_entries_are_refused_deterministically(self) -> None:
        bad = [
            Entry(1, 1, EntryType.NORMAL, b"\xc1not msgpack"),
            Entry(1, 2, EntryType.NORMAL, encode_op("frobnicate")),
            Entry(1, 3, EntryType.NORMAL, encode_op("join", 0, ["a:1"])),
            Entry(1, 4, EntryType.NOOP, b""),
        ]
        results = self.apply(bad, None)
        self.assertEqual([r["status"] for r in results[:3]], [400, 400, 400])
        self.assertIsNone(results[3])
        self.assertEqual(self.app.history.latest.num, 0)
        self.assertEqual(self.storage.applied_index(), 4)
        self.assertRaises(BadRequest, decode_op, encode_op("x")[:0] + b"\x01")

    def test_restart_recovers_every_config(self) -> None:
        self.apply(entries(1, ("join", 1, ["a:1"]), ("join", 2, ["b:1"]), ("rebalance",)), None)
        self.apply(entries(4, ("move", 8200, 8201, 1)), None)
        before = [c.to_dict() for c in self.app.history.configs]
        app2 = self.restart()
        self.assertEqual([c.to_dict() for c in app2.history.configs], before)
        self.assertEqual(app2.history.query(2).ranges, ((0, 16383, 1),))
        self.assertEqual(self.storage.applied_index(), 4)
        # And it carries on numbering from where it was.
        res = self.apply(entries(5, ("rebalance",)), None, app2)
        self.assertEqual(res[0]["config"]["num"], 5)

    def test_member_addresses_from_conf_changes(self) -> None:
        cc = ConfChange(ConfChangeType.ADD_LEARNER, 3, b"127.0.0.1:9003")
        e = Entry(1, 1, EntryType.CONF_CHANGE, encode_conf_change(cc, ConfState((0,), (3,))))
        seen: list[dict[int, str]] = []
        self.app.on_addresses.append(lambda a: seen.append(dict(a)))
        self.assertEqual(self.apply([e], ConfState((0,), (3,))), [None])
        self.assertEqual(seen, [{3: "127.0.0.1:9003"}])
        self.assertEqual(self.restart().addresses, {3: "127.0.0.1:9003"})
        rm = Entry(
            1,
            2,
            EntryType.CONF_CHANGE,
            encode_conf_change(ConfChange(ConfChangeType.REMOVE, 3), CONF),
        )
        app2 = self.restart()
        self.apply([rm], CONF, app2)
        self.assertEqual(self.restart().addresses, {})

    def test_restore_snapshot_reloads_from_storage(self) -> None:
        self.apply(entries(1, ("join", 1, ["a:1"]), ("join", 2, ["b:1"])), None)
        self.apply(entries(3, ("rebalance",)), None)
        meta, snap = self.storage.outgoing_snapshot()
        items = list(self.storage.snapshot_items(snap))
        snap.close()
        other = LevelDBStorage.in_memory(CONF)
        app2 = MetaApplication(other)
        self.apply(entries(1, ("join", 7, ["z:1"])), None, app2)  # stale state, replaced
        self.assertTrue(self.successResultOf(other.apply_snapshot(meta, items)))
        app2.restore_snapshot(None)  # type: ignore[arg-type]
        self.assertEqual(
            [c.to_dict() for c in app2.history.configs],
            [c.to_dict() for c in self.app.history.configs],
        )
        self.assertEqual(other.applied_index(), 3)


class MetaNodeTests(unittest.TestCase):
    """A one-node meta group on a Clock: propose, read, compact, restart."""

    def start(self, db: MemoryDB) -> tuple[RaftNode, MetaApplication]:
        storage = LevelDBStorage.in_memory(CONF, db=db)
        app = MetaApplication(storage)
        node = RaftNode(
            0,
            storage,
            app,
            self.clock,
            config=Config(0, election_tick=10),
            tick_interval=0.1,
            request_timeout=3.0,
            rng=random.Random(0),
            snapshot_entries=0,
        )
        node.startService()
        return node, app

    def run_for(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.01)):
            self.clock.advance(0.01)

    def test_propose_read_compact_restart(self) -> None:
        self.clock = task.Clock()
        db = MemoryDB()
        node, app = self.start(db)
        self.run_for(0.5)
        results = [
            node.propose(encode_op("join", 1, ["a:1"])),
            node.propose(encode_op("join", 2, ["b:1"])),
            node.propose(encode_op("rebalance")),
        ]
        self.run_for(0.5)
        self.assertEqual([self.successResultOf(d)["config"]["num"] for d in results], [1, 2, 3])
        d = node.read(lambda: app.history.query(1))
        self.run_for(0.5)
        self.assertEqual(self.successResultOf(d).ranges, ((0, 16383, 1),))
        c = node.compact(keep=0)
        self.run_for(0.2)
        self.assertGreater(self.successResultOf(c), 0)
        d = node.propose(encode_op("move", 0, 0, 2))
        self.run_for(0.5)
        self.assertEqual(self.successResultOf(d)["config"]["num"], 4)
        self.successResultOf(node.stopService())

        node2, app2 = self.start(db)
        self.run_for(0.5)
        self.assertEqual(
            [cfg.to_dict() for cfg in app2.history.configs],
            [cfg.to_dict() for cfg in app.history.configs],
        )
        d = node2.read(lambda: app2.history.latest)
        self.run_for(0.5)
        latest: ClusterConfig = self.successResultOf(d)
        self.assertEqual((latest.num, latest.owner(0)), (4, 2))
        self.successResultOf(node2.stopService())
