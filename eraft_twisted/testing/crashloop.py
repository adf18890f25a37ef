"""The crash durability loop: kill -9 while clients write, then check.

:func:`crash_loop` kills a random node (sometimes the whole group) while
clients INCR counters and SET fresh keys; after every restart each
acknowledged SET must be there with its value, each counter at least its
acknowledged INCRs, at most those plus the ones of unknown outcome, and
never lower than before.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .clients import ClientThreads, UniqueValues, connect, send
from .harness import keep_artifacts, seeded
from .kvgroup import KVGroup

if TYPE_CHECKING:
    from redis.connection import Connection

__all__ = ["CrashLoopResult", "crash_loop"]


@dataclass
class CrashLoopResult:
    """What the loop did and every problem the checks after restarts found."""

    ok: bool
    iterations: int
    kills: int
    all_killed: int
    acked_sets: int
    acked_incrs: int
    problems: list[str]
    wall: float
    kept: str | None = None

    def summary(self) -> str:
        verdict = "durable" if self.ok else f"FAILED ({len(self.problems)} problems)"
        text = (
            f"crash loop: {self.iterations} iterations, {self.kills} kill -9 "
            f"({self.all_killed} of the whole group), {self.acked_sets} acknowledged SETs, "
            f"{self.acked_incrs} acknowledged INCRs; result: {verdict}; wall {self.wall:.0f}s"
        )
        if self.kept:
            text += f"; kept in {self.kept}"
        return text


class _Ledger:
    """What the crash-loop clients were told."""

    def __init__(self, counters: int) -> None:
        self.lock = threading.Lock()
        self.acked = [0] * counters
        self.unknown = [0] * counters
        self.sets: dict[str, str] = {}  # key -> value, acknowledged
        self.maybe: dict[str, str] = {}  # key -> value, outcome unknown
        self.floor = [0] * counters  # highest value observed so far

    def record_incr(self, counter: int, ok: bool) -> None:
        with self.lock:
            if ok:
                self.acked[counter] += 1
            else:
                self.unknown[counter] += 1

    def record_set(self, key: str, value: str, ok: bool) -> None:
        with self.lock:
            (self.sets if ok else self.maybe)[key] = value


class _CrashClients(ClientThreads):
    """Clients doing INCR and SET until stopped, recording in a ledger."""

    def __init__(self, cluster: KVGroup, ledger: _Ledger, serial: UniqueValues) -> None:
        super().__init__(timeout=2.0)
        self.cluster = cluster
        self.ledger = ledger
        self.serial = serial

    def client(self, c: int, rng: random.Random) -> None:
        counters = len(self.ledger.acked)

        def step(conn: Connection) -> bool:
            """One INCR or SET: keep the connection?"""
            if rng.random() < 0.5:
                k = rng.randrange(counters)
                reply = send(conn, ("INCR", f"crash:ctr{k}"))
                self.ledger.record_incr(k, not reply.error)
            else:
                n = self.serial.next()
                key, value = f"crash:set:{c}:{n}", f"v{n}"
                reply = send(conn, ("SET", key, value))
                self.ledger.record_set(key, value, not reply.error)
            return not (reply.lost or reply.code in ("TIMEOUT", "CLUSTERDOWN"))

        self.drive(self.cluster.nodes, c, rng, step)


def _read_all(
    cluster: KVGroup, keys: list[str], timeout: float = 60.0
) -> list[bytes | None] | None:
    """MGET every key (in chunks) from some node, retrying on errors."""
    deadline = time.monotonic() + timeout
    out: list[bytes | None] = []
    i = 0
    while i < len(keys):
        chunk = keys[i : i + 500]
        got: list[bytes | None] | None = None
        while got is None and time.monotonic() < deadline:
            node = random.choice([n for n in cluster.nodes if n.alive])
            conn = connect(node.resp_port, 5.0)
            if conn is not None:
                reply = send(conn, ("MGET", *chunk))
                conn.disconnect()
                if not reply.error and isinstance(reply.value, list):
                    got = reply.value
            if got is None:
                time.sleep(0.2)
        if got is None:
            return None
        out.extend(got)
        i += len(chunk)
    return out


def crash_loop(
    iterations: int = 8,
    seed: int | None = None,
    nodes: int = 3,
    clients: int = 6,
    counters: int = 4,
    run: tuple[float, float] = (0.5, 2.0),
    all_nodes: float = 0.25,
    node_args: list[str] | None = None,
    keep_dir: str | None = None,
    out: Callable[[str], object] = print,
) -> CrashLoopResult:
    """kill -9 a random node (the whole group with probability ``all_nodes``)
    while clients INCR and SET; after each restart every acknowledged SET is
    present with its value, every counter is at least its acknowledged
    INCRs, at most those plus the unknown ones, and never goes down."""
    t0 = time.monotonic()
    seed, rng = seeded(seed)
    extra = node_args or ["--tick-ms", "50", "--timeout", "2", "--snapshot-entries", "300"]
    cluster = KVGroup(nodes, proxies=False, extra=extra)
    ledger = _Ledger(counters)
    problems: list[str] = []
    kills = all_killed = 0
    serial = UniqueValues()
    log: list[str] = []
    done = 0
    try:
        cluster.start()
        cluster.leader()
        for it in range(iterations):
            writers = _CrashClients(cluster, ledger, serial)
            seeds = [random.Random(rng.random()) for _ in range(clients)]
            for c, client_rng in enumerate(seeds):
                writers.spawn(f"crash-client-{c}", writers.client, c, client_rng)
            time.sleep(rng.uniform(*run))
            if rng.random() < all_nodes:
                victims = list(cluster.nodes)
                all_killed += 1
            else:
                victims = [rng.choice(cluster.nodes)]
            for node in victims:
                node.kill()
            kills += len(victims)
            log.append(f"iteration {it}: kill -9 {[n.node_id for n in victims]}")
            time.sleep(rng.uniform(0.1, 0.6))
            writers.stop()
            for node in victims:
                node.start()
            for node in victims:
                node.wait_up()
            cluster.leader()
            problems += _verify(cluster, ledger, it)
            done += 1
            if problems:
                break
    except RuntimeError as e:
        problems.append(f"cluster failure: {e}")
    finally:
        cluster.stop()
    result = CrashLoopResult(
        ok=not problems,
        iterations=done,
        kills=kills,
        all_killed=all_killed,
        acked_sets=len(ledger.sets),
        acked_incrs=sum(ledger.acked),
        problems=problems,
        wall=time.monotonic() - t0,
    )
    if problems:
        readme = f"seed {seed}\n" + "\n".join(log + problems) + "\n"
        result.kept = keep_artifacts(f"crash-loop-failure-{seed}-", keep_dir, readme, cluster)
    shutil.rmtree(cluster.dir, ignore_errors=True)
    out(result.summary() + f" [seed {seed}]")
    for p in problems[:20]:
        out("  " + p)
    return result


def _verify(cluster: KVGroup, ledger: _Ledger, it: int) -> list[str]:
    """Read everything back and compare with the ledger (updating its floors)."""
    problems: list[str] = []
    n = len(ledger.acked)
    ctr_keys = [f"crash:ctr{k}" for k in range(n)]
    set_keys = sorted(ledger.sets)
    maybe_keys = sorted(ledger.maybe)
    values = _read_all(cluster, ctr_keys + set_keys + maybe_keys)
    if values is None:
        return [f"iteration {it}: cannot read back after restart"]
    for k in range(n):
        raw = values[k]
        v = int(raw) if raw is not None else 0
        lo, hi = ledger.acked[k], ledger.acked[k] + ledger.unknown[k]
        if not lo <= v <= hi:
            problems.append(
                f"iteration {it}: counter {k} is {v}, expected {lo}..{hi} "
                f"({ledger.acked[k]} acknowledged, {ledger.unknown[k]} unknown)"
            )
        if v < ledger.floor[k]:
            problems.append(f"iteration {it}: counter {k} went down from {ledger.floor[k]} to {v}")
        ledger.floor[k] = max(ledger.floor[k], v)
    got = values[n:]
    for key, raw in zip(set_keys, got[: len(set_keys)], strict=True):
        if raw is None or raw.decode() != ledger.sets[key]:
            problems.append(
                f"iteration {it}: acknowledged SET {key}={ledger.sets[key]} reads {raw!r}"
            )
    for key, raw in zip(maybe_keys, got[len(set_keys) :], strict=True):
        if raw is not None:
            if raw.decode() != ledger.maybe[key]:
                problems.append(f"iteration {it}: SET {key} reads {raw!r}, never written")
            else:  # it happened: from now on it must stay
                ledger.sets[key] = ledger.maybe.pop(key)
    return problems
