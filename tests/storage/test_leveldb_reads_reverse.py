"""Reverse range reads of the state machine's rows on a real LevelDB."""

from __future__ import annotations

import tempfile

from twisted.trial.unittest import SynchronousTestCase

from eraft_twisted.raft.types import ConfState
from eraft_twisted.storage.leveldb import LevelDBStorage


class ReverseIterateTests(SynchronousTestCase):
    def test_a_range_whose_only_key_is_its_start(self) -> None:
        # plyvel 1.5 answers nothing for such a reverse range: the storage
        # must still find the key (a one-element list's RPOP reads so).
        storage = LevelDBStorage.open(tempfile.mkdtemp(), synchronous=True, conf=ConfState((1,)))
        self.addCleanup(storage.close)
        keys = [b"Sc" + bytes([i]) for i in range(1, 5)]
        storage.apply_ops([(k, b"v") for k in keys], 0, applied_term=0)
        for lo in range(4):
            for hi in range(lo + 1, 5):
                stop = keys[hi] if hi < 4 else b"Sd"
                forward = list(storage.iterate(keys[lo], stop))
                backward = list(storage.iterate(keys[lo], stop, reverse=True))
                self.assertEqual(backward, forward[::-1], (lo, hi))
                self.assertEqual([k for k, _ in forward], keys[lo:hi])
