"""A Jepsen-style campaign over a whole sharded cluster of real processes.

:func:`run_cluster_campaign` starts a :class:`~.cluster_procs.ShardedCluster`
(3 meta nodes, two kv groups of 3 behind fault-injecting proxies, the
router), writes some filler keys so migrations copy several chunks, then
runs for ``seconds``: clients through the router and straight to the kv
nodes (:class:`~.cluster_workload.ClusterWorkload`), three nemesis threads
(process faults on every kind of process; partitions inside kv groups;
clock skew of any process, through libfaketime) and
a mover moving slot ranges between the groups all along
(:mod:`.cluster_nemesis`). Then it heals everything, restarts whatever is
down, waits until no migration is in flight, reads every key back through
the router, and checks:

* every key's history with the linearizability checker, in strict mode (a
  write answered ``-MOVED``/``-TRYAGAIN``/``-CLUSTERDOWN`` must not appear);
* every counter between its acknowledged and acknowledged + unknown INCRs;
* every TTL key still carries its TTL;
* once any read saw an expiring key expired, no later read returned it;
* every filler key still holds its value;
* the three nodes of each group serve the same keys and values;
* every process came back after its faults and none exited on its own.

It prints one summary line. A failing run keeps the history, the nemesis
log and every process's log in a directory it names. ``bench/jepsen_cluster.py``
runs a series of these (``make jepsen-cluster SECONDS=N``).
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .clients import connect, send
from .clockskew import libfaketime
from .cluster_nemesis import CLOCK_FAULTS, FAULTS, NETWORK_FAULTS, ClusterNemesis, Mover
from .cluster_procs import KV_ARGS, ShardedCluster
from .cluster_workload import ClusterWorkload
from .harness import Background, EventLog, keep_artifacts, seeded
from .linearizability import History, Result, check

if TYPE_CHECKING:
    from redis.connection import Connection

__all__ = ["ClusterCampaignResult", "run_cluster_campaign"]


@dataclass
class ClusterCampaignResult:
    """What one run did and what the checks said."""

    ok: bool
    seed: int
    seconds: float
    operations: int
    outcomes: dict[str, int]
    faults: dict[str, int]
    moves: int
    moves_seen: int
    check: Result
    wall: float
    problems: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    redirects: int = 0
    kept: str | None = None
    log: list[str] = field(default_factory=list)
    expiring: tuple[int, int, int] = (0, 0, 0)
    """Expiring keys written, reads that saw one alive, reads that saw it expired."""

    def verdict(self) -> str:
        if self.check.unknown:
            return "UNKNOWN (checker budget exhausted)"
        if not self.check.ok:
            return f"NOT LINEARIZABLE (key {self.check.key!r})"
        if self.problems:
            return f"FAILED ({self.problems[0]}{' ...' if len(self.problems) > 1 else ''})"
        return "linearizable"

    def summary(self) -> str:
        outcomes = ", ".join(f"{v} {k}" for k, v in sorted(self.outcomes.items()))
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        text = (
            f"jepsen cluster: {self.operations} operations ({outcomes}) in {self.seconds:.0f}s; "
            f"{sum(self.faults.values())} faults ({faults}); {self.moves} range moves "
            f"({self.moves_seen} seen complete under faults); {self.expiring[0]} keys expired "
            f"under reads ({self.expiring[1]} reads alive, {self.expiring[2]} expired); "
            f"result: {self.verdict()}; "
            f"checked in {self.check.elapsed:.2f}s, wall {self.wall:.0f}s [seed {self.seed}]"
        )
        if self.kept:
            text += f"; kept in {self.kept}"
        return text


def fill(cluster: ShardedCluster, n: int) -> dict[str, str]:
    """``n`` filler keys through the router (pipelined), so that a moving
    range has several chunks to copy; they are checked at the end."""
    import redis

    pad = "x" * 200  # bigger chunks: copying a range takes a while
    values = {f"fill:{i}": f"f{i}:{pad}" for i in range(n)}
    client = redis.Redis(port=cluster.router.resp_port, socket_timeout=30)
    try:
        items = list(values.items())
        for i in range(0, len(items), 500):
            pipe = client.pipeline(transaction=False)
            for k, v in items[i : i + 500]:
                pipe.set(k, v)
            pipe.execute()
    finally:
        client.close()
    return values


def check_filler(
    cluster: ShardedCluster, values: dict[str, str], timeout: float = 60.0
) -> list[str]:
    """Every filler key reads back (MGET through the router) with its value."""
    keys = sorted(values)
    deadline = time.monotonic() + timeout
    got: list[bytes | None] = []
    i = 0
    conn: Connection | None = None
    while i < len(keys) and time.monotonic() < deadline:
        if conn is None:
            conn = connect(cluster.router.resp_port, 10.0)
            if conn is None:
                time.sleep(0.2)
                continue
        reply = send(conn, ("MGET", *keys[i : i + 500]))
        if reply.error or not isinstance(reply.value, list):
            conn.disconnect()
            conn = None
            time.sleep(0.2)
            continue
        got.extend(reply.value)
        i += 500
    if conn is not None:
        conn.disconnect()
    if len(got) < len(keys):
        return [f"filler keys: no answer to MGET after {timeout:.0f}s"]
    wrong = [(k, v) for k, v in zip(keys, got, strict=True) if v is None or v.decode() != values[k]]
    if not wrong:
        return []
    shown = ", ".join(f"{k}={v!r}" for k, v in wrong[:5])
    return [f"{len(wrong)} of {len(keys)} filler keys lost or wrong: {shown}"]


def _node_state(port: int, timeout: float) -> dict[bytes, bytes | None]:
    """Every key a node serves (KEYS *, after its read barrier) and its
    value as that node reads it (GET, pipelined)."""
    import redis

    client = redis.Redis(port=port, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        keys: list[bytes] = sorted(client.keys("*"))  # type: ignore[arg-type]
        values: list[bytes | None] = []
        for i in range(0, len(keys), 500):
            pipe = client.pipeline(transaction=False)
            for k in keys[i : i + 500]:
                pipe.get(k)
            values.extend(pipe.execute())
    finally:
        client.close()
    return dict(zip(keys, values, strict=True))


def check_replicas(cluster: ShardedCluster, timeout: float = 60.0) -> list[str]:
    """The nodes of each group serve the same keys with the same values:
    replicas did not diverge. Compared again while they differ, up to
    ``timeout``: a write whose client gave up may still commit after the
    heal (its outcome was unknown), and a node whose clock was stepped back
    lags for that long; a real divergence never goes away."""
    deadline = time.monotonic() + timeout
    while True:
        problems = _replica_differences(cluster, deadline)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(1.0)


def _replica_differences(cluster: ShardedCluster, deadline: float) -> list[str]:
    problems = []
    for gid, group in cluster.groups.items():
        states: list[dict[bytes, bytes | None]] = []
        for node in group.nodes:
            while True:
                try:
                    states.append(_node_state(node.resp_port, 10.0))
                    break
                except Exception as e:
                    if time.monotonic() > deadline:
                        return [f"g{gid}n{node.node_id} cannot be read: {e}"]
                    time.sleep(0.5)
        for i in range(1, len(states)):
            a, b = states[0], states[i]
            differ = sorted(
                k for k in set(a) | set(b) if a.get(k, b"<none>") != b.get(k, b"<none>")
            )
            if differ:
                shown = ", ".join(
                    f"{k.decode(errors='replace')}: {a.get(k, b'<none>')!r} vs "
                    f"{b.get(k, b'<none>')!r}"
                    for k in differ[:5]
                )
                problems.append(
                    f"g{gid}: node 0 ({len(a)} keys) and node {i} ({len(b)} keys) differ "
                    f"on {len(differ)} keys: {shown}"
                )
    return problems


class _Watchdog(Background):
    """Notices a process that exited without the nemesis stopping it."""

    def __init__(self, cluster: ShardedCluster, nemeses: list[ClusterNemesis], log: EventLog):
        super().__init__("watchdog", log)
        self.cluster = cluster
        self.nemeses = nemeses
        self.problems: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def loop(self) -> None:
        while not self._stop.wait(0.5):
            self.scan()

    def scan(self) -> None:
        down = set().union(*(n.down for n in self.nemeses)) if self.nemeses else set()
        for name, p in self.cluster.processes():
            if p.proc is None or p.alive or id(p) in down:
                continue
            key = (id(p), p.proc.pid)
            if key in self._seen:
                continue
            time.sleep(0.2)  # a nemesis may be about to record it
            down = set().union(*(n.down for n in self.nemeses)) if self.nemeses else set()
            if id(p) in down or p.alive:
                continue
            self._seen.add(key)
            text = f"{name} exited on its own (status {p.proc.returncode})"
            self.problems.append(text + ":\n" + p.tail_log(15))
            self.log.note(text)


def run_cluster_campaign(
    seconds: float = 60.0,
    faults: Iterable[str] = FAULTS,
    seed: int | None = None,
    router_clients: int = 6,
    direct_clients: int = 4,
    keys: int = 6,
    ops_per_key: int = 200,
    filler: int = 5000,
    kv_args: list[str] | None = None,
    interval: tuple[float, float] = (0.5, 2.5),
    duration: tuple[float, float] = (1.5, 5.0),
    moves: bool = True,
    check_budget: int | None = 20_000_000,
    keep_dir: str | None = None,
    keep_always: bool = False,
    on_cluster: Callable[[ShardedCluster], None] | None = None,
    out: Callable[[str], object] = print,
) -> ClusterCampaignResult:
    """One run on a fresh cluster; see the module docstring. ``on_cluster``
    is called with the cluster before it starts (to register cleanups).
    Artifacts are kept (under ``keep_dir``) when the run fails, or always
    with ``keep_always``."""
    t_start = time.monotonic()
    seed, rng = seeded(seed)
    fault_list = list(faults)
    if "skew" in fault_list and libfaketime() is None:
        out("libfaketime is not installed (Debian package faketime): no clock skew")
        fault_list.remove("skew")
    log = EventLog()
    cluster = ShardedCluster(kv_args=kv_args or KV_ARGS, skew="skew" in fault_list)
    if on_cluster is not None:
        on_cluster(cluster)
    history = History()
    network = [f for f in fault_list if f in NETWORK_FAULTS]
    clock = [f for f in fault_list if f in CLOCK_FAULTS]
    process = [f for f in fault_list if f not in NETWORK_FAULTS + CLOCK_FAULTS]
    nemeses = [
        ClusterNemesis(
            cluster,
            g,
            random.Random(rng.random()),
            log,
            # A clock step is rarer than a crash: NTP steps now and then.
            interval if g is not clock else (interval[0] * 3, interval[1] * 3),
            duration,
            name=f"nemesis-{i}",
        )
        for i, g in enumerate((process, network, clock))
        if g
    ]
    mover = Mover(cluster, random.Random(rng.random()), log)
    workload = ClusterWorkload(
        cluster,
        history,
        random.Random(rng.random()),
        router_clients=router_clients,
        direct_clients=direct_clients,
        keys=keys,
        ops_per_key=ops_per_key,
    )
    watchdog = _Watchdog(cluster, nemeses, log)
    problems: list[str] = []
    result = Result(ok=True)
    try:
        cluster.start()
        filled = fill(cluster, filler)
        log.note(f"cluster up, {filler} filler keys written; faults start")
        workload.start()
        watchdog.start()
        for n in nemeses:
            n.start()
        if moves:
            mover.start()
        time.sleep(seconds)
        mover.stop()
        for n in nemeses:
            n.stop()
        log.note("final heal")
        failed = cluster.heal()
        if failed:
            problems.append(f"{', '.join(failed)} did not come back after the final heal")
        watchdog.stop(timeout=10)
        try:
            cluster.wait_settled(120)
            log.note("settled")
        except RuntimeError as e:
            problems.append(f"the cluster did not settle: {e}")
        time.sleep(1.0)  # a little traffic on the healed cluster
        workload.stop()
        reads = workload.final_reads()
        log.note(f"final reads: {reads} of {len(workload.all_keys())} keys")
        if reads < len(workload.all_keys()):
            problems.append(f"only {reads} of {len(workload.all_keys())} keys could be read back")
        problems += workload.counter_problems()
        problems += workload.ttl_problems()
        problems += workload.expiring.problems()
        written, alive, expired = workload.expiring.counts()
        log.note(f"expiring keys: {written} written, read {alive}x alive, {expired}x expired")
        problems += check_filler(cluster, filled)
        problems += check_replicas(cluster)
        log.note("replicas compared")
        watchdog.scan()
        for n in nemeses:
            problems += n.problems
            if n.error is not None:
                problems.append(f"{n.name} error: {n.error!r}")
        if mover.error is not None:
            problems.append(f"mover error: {mover.error!r}")
        problems += watchdog.problems
        result = check(history, budget=check_budget)
    except Exception as e:
        problems.append(f"harness: {type(e).__name__}: {e}")
    finally:
        workload.stop()
        mover.stop()
        for n in nemeses:
            n.stop()
        watchdog.stop(timeout=10)
        cluster.stop()
    counts = sum((n.counts for n in nemeses), Counter[str]())
    campaign = ClusterCampaignResult(
        ok=result.ok and not problems,
        seed=seed,
        seconds=seconds,
        operations=len(history),
        outcomes=history.counts(),
        faults=dict(counts),
        moves=mover.committed,
        moves_seen=mover.completed,
        check=result,
        wall=time.monotonic() - t_start,
        problems=problems,
        errors=dict(workload.errors),
        redirects=workload.redirects,
        log=log.lines,
        expiring=workload.expiring.counts(),
    )
    if not campaign.ok or keep_always:
        replay = (
            f".venv/bin/python bench/jepsen_cluster.py --seed {seed} --seconds {seconds:g} "
            f"--run-seconds {seconds:g} --faults {','.join(fault_list)} --filler {filler} "
            f"--router-clients {router_clients} --direct-clients {direct_clients}"
            + ("" if moves else " --no-moves")
            + (f" --kv-args='{' '.join(kv_args)}'" if kv_args else "")
        )
        what = "failure" if not campaign.ok else "run"
        campaign.kept = keep_artifacts(
            f"jepsen-cluster-{what}-{seed}-",
            keep_dir,
            _readme(campaign, fault_list, replay),
            cluster,
            history,
            log.lines,
        )
    shutil.rmtree(cluster.dir, ignore_errors=True)
    out(campaign.summary())
    if not campaign.ok:
        for p in problems[:10]:
            out("  " + p)
        if result.explanation:
            out(result.explanation)
    return campaign


def _readme(campaign: ClusterCampaignResult, faults: list[str], replay: str) -> str:
    errors = "\n".join(f"  {v:6d} {k}" for k, v in sorted(campaign.errors.items()))
    return (
        f"seed {campaign.seed}, faults {faults}, seconds {campaign.seconds}\n"
        f"replay: {replay}\n"
        f"{campaign.summary()}\n\nproblems:\n"
        + "\n".join(campaign.problems)
        + f"\n\nchecker: {campaign.check.explanation}\n\nclient errors:\n{errors}\n\n"
        "re-check: python -m eraft_twisted.testing.linearizability history.json\n"
    )
