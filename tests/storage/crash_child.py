"""Child process of the crash test: writes until it is killed.

``python -m tests.storage.crash_child DIR`` opens the storage with the
threaded writer, keeps several persists in flight (entry i, hard state
with commit i, synced) and applies each entry once persisted (KV key
``k<i>`` and applied index i in one batch, not synced). It prints
``P i`` when the persist of i is acknowledged and ``A i`` when its apply
is; the parent kills it with SIGKILL at some point and checks that
everything acknowledged survived.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import reactor

from eraft_twisted.raft.types import Entry, HardState
from eraft_twisted.storage.layout import data_key
from eraft_twisted.storage.leveldb import LevelDBStorage


def main(path: str) -> None:
    storage = LevelDBStorage.open(path, reactor=reactor)  # type: ignore[arg-type]
    out = sys.stdout
    state = {"next": storage.last_index() + 1}

    def report(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    def one() -> None:
        i = state["next"]
        state["next"] += 1
        d = storage.persist([Entry(1, i, data=b"v%d" % i)], HardState(1, 0, i), sync=True)

        def persisted(_: Any) -> None:
            report(f"P {i}")
            applied = storage.apply_ops([(data_key(b"k%d" % i), b"v%d" % i)], i)
            applied.addCallback(lambda _: report(f"A {i}"))
            one()

        d.addCallback(persisted)

    report("READY")
    for _ in range(8):
        one()
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1])
