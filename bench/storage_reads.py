"""Benchmark: a LevelDB point read inline on the reactor thread vs. through the read pool.

    .venv/bin/python bench/storage_reads.py [--keys 200000] [--sizes 100,1024] [--gets 20000]

For each value size, fills a fresh LevelDB (opened as a node opens it:
``LevelDBStorage.open``, 64 MiB block cache, bloom filters) with ``--keys``
keys, then times ``storage.get`` (what ``KVStore.get_record`` does when the
key is not staged):

- inline, disk cold: the first 1000 random gets after the database files
  were dropped from the OS page cache (``posix_fadvise(DONTNEED)`` while
  closed) and reopened: most read the disk (or the host's cache, on a VM;
  the kernel's readahead soon brings in neighbouring blocks too);
- inline, block cache cold: the same keys after closing and reopening the
  database (an empty block cache, the file pages still in the OS cache);
- inline, warm: the same keys again;
- inline, missing keys (answered by the bloom filters);
- a batch of 1000 gets inline (the expiry sweep's limit; a large MGET);
- ``storage.reads.run(get)`` round trip under a running reactor, one at a
  time: what moving point reads to the pool would add to each GET.

Reports p50/p99 in microseconds.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from typing import Any

import plyvel
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import react

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eraft_twisted.raft.types import ConfState  # noqa: E402
from eraft_twisted.storage import layout  # noqa: E402
from eraft_twisted.storage.leveldb import LevelDBStorage  # noqa: E402


def user_key(i: int) -> bytes:
    return b"user:%010d" % i


def fill(path: str, keys: int, size: int) -> None:
    """Write the data directly (no Raft log): only the state-machine keys matter here."""
    storage = LevelDBStorage.open(path, synchronous=True, conf=ConfState((1,)))
    storage.close()
    db = plyvel.DB(path)
    rng = random.Random(1)
    value = bytes(8) + rng.randbytes(size)  # a record: 8-byte deadline + value
    with db.write_batch() as wb:
        for i in range(keys):
            wb.put(layout.data_key(user_key(i)), value)
    db.compact_range()
    db.close()


def drop_page_cache(path: str) -> None:
    """Ask the kernel to forget the (closed) database's file pages."""
    for name in os.listdir(path):
        fd = os.open(os.path.join(path, name), os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = samples[len(samples) // 2] * 1e6
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6
    return f"p50 {p50:8.1f} us   p99 {p99:8.1f} us"


def time_each(fn: Callable[[bytes], Any], keys: list[bytes]) -> list[float]:
    out = []
    clock = time.perf_counter
    for k in keys:
        t0 = clock()
        fn(k)
        out.append(clock() - t0)
    return out


@inlineCallbacks
def pooled(
    storage: LevelDBStorage, keys: list[bytes]
) -> Generator[Deferred[Any], Any, list[float]]:
    out = []
    clock = time.perf_counter
    for k in keys:
        t0 = clock()
        yield storage.reads.run(storage.get, k)
        out.append(clock() - t0)
    return out


@inlineCallbacks
def run_size(
    reactor: Any, base: str, args: argparse.Namespace, size: int
) -> Generator[Deferred[Any], Any, None]:
    path = os.path.join(base, f"db-{size}")
    t0 = time.perf_counter()
    fill(path, args.keys, size)
    print(f"\n{args.keys} keys of {size} B (filled in {time.perf_counter() - t0:.1f} s)")
    rng = random.Random(size)
    sample = [user_key(rng.randrange(args.keys)) for _ in range(args.gets)]

    drop_page_cache(path)
    storage = LevelDBStorage.open(path, reactor=reactor, conf=ConfState((1,)))
    cold = time_each(storage.get, sample[:1000])
    print(f"  inline get, disk cold            {percentiles(cold)}")
    time_each(storage.get, sample[1000:])
    yield storage.close()
    storage = LevelDBStorage.open(path, reactor=reactor, conf=ConfState((1,)))
    reopened = time_each(storage.get, sample)
    print(f"  inline get, block cache cold     {percentiles(reopened)}")
    warm = time_each(storage.get, sample)
    print(f"  inline get, warm                 {percentiles(warm)}")
    missing = time_each(storage.get, [b"absent:%d" % i for i in range(args.gets)])
    print(f"  inline get, missing key          {percentiles(missing)}")
    batches = []
    for _ in range(5):
        for i in range(0, len(sample) - 999, 1000):
            t = time.perf_counter()
            for k in sample[i : i + 1000]:
                storage.get(k)
            batches.append(time.perf_counter() - t)
    print(f"  inline, 1000 warm gets in a row  {percentiles(batches)}")
    trip = yield pooled(storage, sample)
    print(f"  ReadPool.run(get) round trip     {percentiles(trip)}")
    yield storage.close()


@inlineCallbacks
def main(reactor: Any, args: argparse.Namespace) -> Generator[Deferred[Any], Any, None]:
    base = tempfile.mkdtemp(prefix="eraft-bench-reads-", dir=args.dir)
    try:
        for size in args.sizes:
            yield run_size(reactor, base, args, size)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=200_000)
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1024])
    p.add_argument("--gets", type=int, default=20_000)
    p.add_argument("--dir", default=None, help="where to put the databases (default: $TMPDIR)")
    return p.parse_args()


if __name__ == "__main__":
    options = parse()
    react(lambda reactor: main(reactor, options))
