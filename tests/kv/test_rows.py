"""KVStore's row reads: staged and pending changes merged in, and the
remembered start of a collection's rows never hiding a row."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.kv.store import KVStore
from eraft_twisted.raft.types import ConfState
from eraft_twisted.storage import layout
from eraft_twisted.storage.leveldb import LevelDBStorage


def row(sub: bytes) -> bytes:
    return layout.row_key(7, 42, sub)


class RowReadTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = KVStore(LevelDBStorage.in_memory(ConfState((0,))))

    def subs(self, start: bytes = b"") -> list[bytes]:
        stop = layout.prefix_stop(layout.rows_prefix(7, 42))
        rows = self.store.iterate_rows(row(start), stop)
        return [k[layout.ROW_HEADER :] for k, _ in rows]

    def test_popping_from_the_front_never_hides_a_new_first_row(self) -> None:
        for sub in (b"b", b"c", b"d", b"e"):
            self.store.stage_row(row(sub), b"")
        self.assertEqual(self.subs(), [b"b", b"c", b"d", b"e"])
        for sub in (b"b", b"c"):  # popped: the next read starts past them
            self.store.stage_row(row(sub), None)
            self.assertEqual(self.subs()[:1], [b"cd"[b"bc".index(sub) : b"bc".index(sub) + 1]])
        # A row added before the remembered start is found (staged, then written).
        self.store.stage_row(row(b"a"), b"")
        self.assertEqual(self.subs(), [b"a", b"d", b"e"])
        self.store.stage_row(row(b"a"), None)
        self.assertEqual(self.subs(), [b"d", b"e"])
        self.store.stage_row(row(b"c"), b"")
        self.assertEqual(self.subs(), [b"c", b"d", b"e"])
        # Every row removed: empty, and a new one anywhere shows.
        for sub in (b"c", b"d", b"e"):
            self.store.stage_row(row(sub), None)
        self.assertEqual(self.subs(), [])
        self.store.stage_row(row(b"z"), b"")
        self.store.stage_row(row(b"0"), b"")
        self.assertEqual(self.subs(), [b"0", b"z"])
        # Reads from another start are their own.
        self.assertEqual(self.subs(b"1"), [b"z"])
        self.store.stage_row(row(b"5"), b"")
        self.assertEqual(self.subs(b"1"), [b"5", b"z"])

    def test_popping_from_the_back_never_hides_a_new_last_row(self) -> None:
        stop = layout.prefix_stop(layout.rows_prefix(7, 42))

        def backwards() -> list[bytes]:
            rows = self.store.iterate_rows(row(b""), stop, reverse=True)
            return [k[layout.ROW_HEADER :] for k, _ in rows]

        for sub in (b"b", b"c", b"d", b"e"):
            self.store.stage_row(row(sub), b"")
        self.assertEqual(backwards(), [b"e", b"d", b"c", b"b"])
        self.store.stage_row(row(b"e"), None)
        self.store.stage_row(row(b"d"), None)
        self.assertEqual(backwards(), [b"c", b"b"])
        self.store.stage_row(row(b"d"), b"")  # at the remembered end
        self.assertEqual(backwards(), [b"d", b"c", b"b"])
        self.store.stage_row(row(b"z"), b"")  # past it
        self.assertEqual(backwards(), [b"z", b"d", b"c", b"b"])
        for sub in (b"z", b"d", b"c", b"b"):
            self.store.stage_row(row(sub), None)
        self.assertEqual(backwards(), [])
        self.store.stage_row(row(b"a"), b"")
        self.assertEqual(backwards(), [b"a"])

    def test_reads_match_a_plain_model_under_random_writes(self) -> None:
        """Random writes, removals, flushes and partial reads of a few ranges,
        forwards and backwards: every read gives what a sorted model does."""
        import random

        from eraft_twisted.raft.types import Entry

        self.store.storage.persist([Entry(1, i) for i in range(1, 5000)])
        stop = layout.prefix_stop(layout.rows_prefix(7, 42))
        ranges = [(row(b""), stop), (row(b"10"), row(b"40")), (row(b"25"), stop)]
        model: dict[bytes, bytes] = {}
        rng = random.Random(12)
        flushed = 0
        for step in range(6000):
            roll = rng.random()
            key = row(b"%02d" % rng.randrange(50))
            if roll < 0.35:
                value = b"v%d" % step
                self.store.stage_row(key, value)
                model[key] = value
            elif roll < 0.6:
                self.store.stage_row(key, None)
                model.pop(key, None)
            elif roll < 0.65:
                flushed += 1
                self.store.flush(flushed)
            else:
                lo, hi = rng.choice(ranges)
                reverse = rng.random() < 0.5
                take = rng.randrange(1, 8)
                got = []
                for item in self.store.iterate_rows(lo, hi, reverse):
                    got.append(item)
                    if len(got) >= take:
                        break
                want = sorted(((k, v) for k, v in model.items() if lo <= k < hi), reverse=reverse)
                self.assertEqual(got, want[:take], (step, lo, hi, reverse))
