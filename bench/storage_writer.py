"""Benchmark: synced writes per second through the group-commit Writer.

    .venv/bin/python bench/storage_writer.py [--writes 2000] [--concurrency 1,4,16,64]

Each run opens a fresh LevelDB, starts ``c`` submitters that each write
``writes / c`` small batches one after another (submit, wait for the
Deferred, submit the next), every one asking for ``sync=True``. With one
submitter every write pays a full fsync; with many, the writes that queue
up during one fsync share the next. A raw ``plyvel`` loop (``put(sync=True)``
on one thread, no Writer) is printed first as the disk's baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Generator
from typing import Any

import plyvel
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.task import react

from eraft_twisted.storage.writer import Writer


def raw_baseline(path: str, writes: int, value: bytes) -> float:
    db = plyvel.DB(path, create_if_missing=True)
    try:
        start = time.perf_counter()
        for i in range(writes):
            db.put(b"k%08d" % i, value, sync=True)
        return writes / (time.perf_counter() - start)
    finally:
        db.close()


@inlineCallbacks
def run(
    reactor: Any, path: str, writes: int, concurrency: int, value: bytes, fsync: str
) -> Generator[Deferred[Any], Any, dict[str, float]]:
    db = plyvel.DB(path, create_if_missing=True)
    writer = Writer(db, reactor, fsync=fsync)  # type: ignore[arg-type]
    per = writes // concurrency

    @inlineCallbacks
    def submitter(n: int) -> Generator[Deferred[Any], Any, None]:
        for i in range(per):
            yield writer.submit([(b"k%04d-%08d" % (n, i), value)], sync=True)

    start = time.perf_counter()
    yield gatherResults([submitter(n) for n in range(concurrency)])
    elapsed = time.perf_counter() - start
    yield writer.stop()
    db.close()
    st = writer.stats
    return {
        "writes_per_s": per * concurrency / elapsed,
        "batches": st.batches,
        "avg_group": st.submissions / max(st.batches, 1),
        "ms_per_batch": 1000 * st.write_seconds / max(st.batches, 1),
    }


@inlineCallbacks
def main(reactor: Any, args: argparse.Namespace) -> Generator[Deferred[Any], Any, None]:
    base = tempfile.mkdtemp(prefix="eraft-bench-", dir=args.dir)
    value = os.urandom(args.value_size)
    try:
        rate = raw_baseline(os.path.join(base, "raw"), args.writes // 4 or 1, value)
        print(f"raw plyvel put(sync=True), 1 thread: {rate:10.0f} writes/s")
        print(
            f"Writer, sync=True, fsync={args.fsync}, {args.writes} writes of {args.value_size} B:"
        )
        print(
            f"{'submitters':>10} {'writes/s':>10} {'batches':>8} {'avg group':>10} {'ms/batch':>9}"
        )
        for c in args.concurrency:
            r = yield run(reactor, os.path.join(base, f"c{c}"), args.writes, c, value, args.fsync)
            print(
                f"{c:>10} {r['writes_per_s']:>10.0f} {r['batches']:>8.0f} "
                f"{r['avg_group']:>10.1f} {r['ms_per_batch']:>9.2f}"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--writes", type=int, default=2000)
    p.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4, 16, 64, 256],
    )
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--fsync", choices=["always", "never"], default="always")
    p.add_argument("--dir", default=None, help="where to create the databases (a real disk)")
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse()
    react(main, [arguments])
