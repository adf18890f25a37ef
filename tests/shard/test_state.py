"""Slot ownership and the migration steps, applied deterministically."""

from __future__ import annotations

from twisted.trial import unittest

from eraft_twisted.hashslot import key_hash_slot
from eraft_twisted.kv.app import KVApplication
from eraft_twisted.kv.statemachine import Op, OpError, encode_op
from eraft_twisted.kv.store import KVStore
from eraft_twisted.raft.types import ConfState, Entry, EntryType, Snapshot, SnapshotMeta
from eraft_twisted.shard.state import ShardState, ranges_of
from eraft_twisted.shard.statemachine import ShardedStateMachine
from eraft_twisted.storage.leveldb import LevelDBStorage

A, B = 1, 2
SERVERS = {A: ["127.0.0.1:7001"], B: ["127.0.0.1:7002"]}


def config(num: int, ranges: list[tuple[int, int, int]]) -> dict[str, object]:
    return {"num": num, "groups": {str(g): s for g, s in SERVERS.items()}, "ranges": ranges}


ALL_A = config(1, [(0, 16383, A)])
SPLIT = config(2, [(0, 8191, A), (8192, 16383, B)])
BACK = config(3, [(0, 16383, A)])


class ShardStateTests(unittest.TestCase):
    def test_first_config_owns_at_once(self) -> None:
        st = ShardState()
        self.assertTrue(st.apply_config(A, ALL_A))
        self.assertEqual((st.num, st.incoming, st.outgoing), (1, {}, {}))
        self.assertIsNone(st.check_slot(5))

    def test_split_freezes_on_the_source_and_fetches_on_the_target(self) -> None:
        a, b = ShardState(), ShardState()
        for st, g in ((a, A), (b, B)):
            st.apply_config(g, ALL_A)
            st.apply_config(g, SPLIT)
        self.assertEqual(a.runs(a.outgoing), [(8192, 16383, B, 2)])
        self.assertEqual(b.runs(b.incoming), [(8192, 16383, A, 2)])
        self.assertEqual(a.check_slot(9000), OpError("MOVED", "9000 127.0.0.1:7002"))
        self.assertEqual(
            b.check_slot(9000),
            OpError("TRYAGAIN", "slot is being migrated to this group; retry shortly"),
        )
        self.assertEqual(b.check_slot(10), OpError("MOVED", "10 127.0.0.1:7001"))
        # How far a scan from a slot may go before it must ask the next owner.
        self.assertEqual((a.served_until(0), a.served_until(8192)), (8192, 8192))
        self.assertEqual((b.served_until(0), b.served_until(9000)), (0, 9000))
        self.assertEqual(ShardState().served_until(5), 16384)  # not sharded: all of it
        # The next config waits for the fetch.
        self.assertFalse(b.apply_config(B, BACK))
        self.assertTrue(a.frozen_for(2, 8192, 16383))
        self.assertFalse(a.frozen_for(3, 8192, 16383))
        # Fenced by the config number.
        self.assertFalse(b.install_done(1, 8192, 16383))
        self.assertTrue(b.install_done(2, 8192, 16383))
        self.assertIsNone(b.check_slot(9000))
        self.assertEqual(b.served_until(8192), 16384)
        self.assertEqual(b.runs(b.notify), [(8192, 16383, A, 2)])
        self.assertEqual(a.release(2, 8192, 16383), [(8192, 16383)])
        self.assertEqual(a.release(2, 8192, 16383), [])
        b.notified(2, 8192, 16383)
        self.assertEqual(b.notify, {})

    def test_moving_back_before_the_release_keeps_the_new_data(self) -> None:
        a = ShardState()
        a.apply_config(A, ALL_A)
        a.apply_config(A, SPLIT)
        a.apply_config(A, BACK)  # A gets them back from B before B released A's copy
        self.assertEqual(a.outgoing, {})
        self.assertEqual(a.runs(a.incoming), [(8192, 16383, B, 3)])
        self.assertEqual(a.release(2, 8192, 16383), [])  # a late release for config 2

    def test_out_of_order_and_foreign_configs_are_ignored(self) -> None:
        st = ShardState()
        self.assertFalse(st.apply_config(A, SPLIT))
        st.apply_config(A, ALL_A)
        self.assertFalse(st.apply_config(A, ALL_A))
        self.assertFalse(st.apply_config(B, SPLIT))

    def test_round_trip(self) -> None:
        st = ShardState()
        st.apply_config(A, ALL_A)
        st.apply_config(A, SPLIT)
        again = ShardState.from_dict(st.to_dict())
        self.assertEqual(again, st)

    def test_ranges_of(self) -> None:
        self.assertEqual(ranges_of({1, 2, 3, 7}), [(1, 3), (7, 7)])
        self.assertEqual(ranges_of({1: "a", 2: "a", 3: "b"}), [(1, 2), (3, 3)])


class Group:
    """One group's state machine over an in-memory LevelDB."""

    def __init__(self, gid: int) -> None:
        self.gid = gid
        self.storage = LevelDBStorage.in_memory(ConfState((0,)))
        self.storage.persist([Entry(1, i) for i in range(1, 500)])
        self.store = KVStore(self.storage, None)
        self.app = KVApplication(self.store, ShardedStateMachine(self.store))
        self.index = 0

    def apply(self, op: Op, *args: object) -> object:
        self.index += 1
        e = Entry(1, self.index, EntryType.NORMAL, encode_op(op, 0, *args))
        return self.app.apply_batch([e])[0]

    def pull(self, num: int, lo: int, hi: int) -> list[bytes]:
        items: list[bytes] = []
        for k, v in self.storage.scan(lo, hi):
            items += [k, v]
        return items


class MigrationTests(unittest.TestCase):
    def test_a_range_moves_with_nothing_lost_or_resurrected(self) -> None:
        a, b = Group(A), Group(B)
        for g in (a, b):
            g.apply(Op.CONFIG, g.gid, ALL_A)
        keys = [b"k%d" % i for i in range(200)]
        a.apply(Op.MSET, [x for k in keys for x in (k, b"v")])
        moving = [k for k in keys if key_hash_slot(k) >= 8192]
        gone = moving[0]
        self.assertEqual(a.apply(Op.DEL, [gone]), 1)  # deleted before the move
        a.apply(Op.SET, moving[1], b"ttl", 10**15, 0, False)
        for g in (a, b):
            g.apply(Op.CONFIG, g.gid, SPLIT)
        # Frozen on A: writes to moving slots are refused from now on.
        self.assertEqual(
            a.apply(Op.SET, moving[2], b"late", 0, 0, False),
            OpError("MOVED", f"{key_hash_slot(moving[2])} 127.0.0.1:7002"),
        )
        refused = b.apply(Op.SET, moving[2], b"early", 0, 0, False)
        self.assertIsInstance(refused, OpError)
        assert isinstance(refused, OpError)
        self.assertEqual(refused.code, "TRYAGAIN")
        items = a.pull(2, 8192, 16383)
        self.assertEqual(b.apply(Op.INSTALL, 1, 8192, 16383, True, items), 0)  # wrong fence
        self.assertEqual(b.apply(Op.INSTALL, 2, 8192, 16383, True, items), len(items) // 2)
        self.assertEqual(b.apply(Op.INSTALL_DONE, 2, 8192, 16383), 1)
        self.assertEqual(b.store.get(moving[2], 0), b"v")
        self.assertIsNone(b.store.get(gone, 0))
        self.assertEqual(b.store.get(moving[1], 0), b"ttl")
        self.assertEqual(b.apply(Op.SET, moving[2], b"new", 0, 0, False), "OK")
        self.assertEqual(a.apply(Op.RELEASE, 2, 8192, 16383), 1)
        self.assertEqual(list(a.storage.scan(8192, 16383)), [])
        self.assertEqual(len(list(a.storage.scan(0, 8191))), len(keys) - len(moving))
        b.apply(Op.NOTIFIED, 2, 8192, 16383)
        self.assertEqual(b.app.sm.shards.notify, {})
        # The state survives a restart (it is replicated state on disk).
        store = KVStore(b.storage, None)
        again = KVApplication(store, ShardedStateMachine(store))
        self.assertEqual(again.sm.shards, b.app.sm.shards)

    def test_a_snapshot_install_brings_the_senders_slot_ownership(self) -> None:
        sender = Group(2)
        sender.apply(Op.CONFIG, 2, {"num": 1, "groups": {"2": ["h:1"]}, "ranges": [(0, 16383, 2)]})
        receiver = Group(2)
        self.assertEqual(receiver.app.sm.shards.num, 0)
        # What installing the sender's snapshot does to the receiver's data:
        # the state-machine area is replaced (sharding state included).
        items = list(sender.storage.snapshot_items(sender.storage.db_snapshot()))
        receiver.storage.apply_ops(items, 5)
        receiver.app.restore_snapshot(Snapshot(SnapshotMeta(5, 1, ConfState((0,)))))
        self.assertEqual(receiver.app.sm.shards, sender.app.sm.shards)
        self.assertEqual(receiver.app.sm.shards.num, 1)
