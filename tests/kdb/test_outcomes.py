"""Outcomes that mean what they say, with real processes: a write answered
"not applied" never applies (so it may be resent), and a write whose fate is
unknown is answered -TIMEOUT and never resent.

Each client APPENDs ``i,`` for its i-th write to a key of its own, so the
final value shows exactly which writes applied, and how many times."""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from redis.exceptions import ClusterDownError, MovedError, TryAgainError
from twisted.trial import unittest

from tests.kdb.sharded import Deployment
from tests.waiting import wait_until

NOT_APPLIED = ("CLUSTERDOWN", "TRYAGAIN", "MOVED")
# redis-py turns these replies into their own classes, without the code in str().
NOT_APPLIED_ERRORS = (ClusterDownError, TryAgainError, MovedError)


def classify(reply: Any) -> str:
    """ "acked", "refused" (not applied), "unknown" (-TIMEOUT or no answer),
    or "error: ..." for any other error, which no write here should get."""
    if isinstance(reply, NOT_APPLIED_ERRORS):
        return "refused"
    if isinstance(reply, redis.ResponseError):
        if str(reply).startswith(NOT_APPLIED):
            return "refused"
        if str(reply).startswith("TIMEOUT"):
            return "unknown"
        return f"error: {type(reply).__name__}: {reply}"
    if isinstance(reply, (redis.ConnectionError, redis.TimeoutError)):
        return "unknown"
    if isinstance(reply, Exception):
        return f"error: {type(reply).__name__}: {reply}"
    return "acked"


class AppendLog(threading.Thread):
    """One client appending numbered tokens to its own key, ``depth`` at a
    time (pipelined), remembering each token's outcome."""

    def __init__(self, connect: Any, key: str, depth: int) -> None:
        super().__init__(daemon=True)
        self.connect = connect
        self.key = key
        self.depth = depth
        self.outcomes: dict[int, str] = {}
        self.stop = threading.Event()
        self.crashed: BaseException | None = None

    def acked(self) -> int:
        return sum(1 for o in list(self.outcomes.values()) if o == "acked")

    def run(self) -> None:
        try:
            self.append_until_stopped()
        except BaseException as e:  # reported by check(), not lost in a thread
            self.crashed = e

    def append_until_stopped(self) -> None:
        c = self.connect()
        i = 0
        while not self.stop.is_set():
            batch = list(range(i, i + self.depth))
            i += self.depth
            pipe = c.pipeline(transaction=False)
            for n in batch:
                pipe.append(self.key, f"{n},")
            try:
                replies = pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.TimeoutError) as e:
                replies = [e] * len(batch)
                time.sleep(0.05)
                c = self.connect()
            for n, reply in zip(batch, replies, strict=True):
                self.outcomes[n] = classify(reply)

    def check(self, test: unittest.TestCase, value: bytes | None) -> dict[str, int]:
        test.assertFalse(self.is_alive(), f"{self.key}: the client did not stop")
        test.assertIsNone(self.crashed, f"{self.key}: the client crashed")
        errors = sorted({o for o in self.outcomes.values() if o.startswith("error")})
        test.assertEqual(errors, [], f"{self.key}: writes answered an unexpected error")
        test.assertGreater(self.acked(), 0, f"{self.key}: no write was acknowledged")
        tokens = [int(t) for t in (value or b"").decode().split(",") if t]
        twice = sorted({t for t in tokens if tokens.count(t) > 1})
        test.assertEqual(twice, [], f"{self.key}: writes applied twice")
        applied = set(tokens)
        by = {
            k: sorted(n for n, o in self.outcomes.items() if o == k) for k in ("acked", "refused")
        }
        lost = [n for n in by["acked"] if n not in applied]
        test.assertEqual(lost, [], f"{self.key}: acknowledged writes lost")
        phantom = [n for n in by["refused"] if n in applied]
        test.assertEqual(phantom, [], f"{self.key}: writes answered 'not applied' did apply")
        if self.depth == 1:  # one at a time: each write follows the one before
            test.assertEqual(tokens, sorted(tokens), f"{self.key}: applied out of order")
        counts: dict[str, int] = {}
        for o in self.outcomes.values():
            counts[o] = counts.get(o, 0) + 1
        return counts


class OutcomeTests(unittest.TestCase):
    timeout = 300

    def setUp(self) -> None:
        self.d = Deployment()
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.stop)
        self.d.start_one_group()

    def make_leader(self, node_id: int) -> None:
        group = self.d.groups[1]

        def is_leader() -> bool:
            if group.leader().node_id == node_id:
                return True
            group.nodes[node_id].client().execute_command("RAFT.TRANSFER_LEADER", node_id)
            return False

        self.d.wait(is_leader, f"node {node_id} leading")

    def test_sigterm_of_the_leader_with_writes_in_flight(self) -> None:
        """Node 0 (the router's first choice) leads and gets SIGTERM three
        times while clients write through the router and straight to it."""
        node = self.d.groups[1].nodes[0]
        clients = [
            AppendLog(lambda: self.d.client(timeout=10), f"via-router:{i}", depth=1)
            for i in range(4)
        ] + [AppendLog(lambda: node.client(timeout=10), f"direct:{i}", depth=20) for i in range(2)]

        def acked() -> int:
            return sum(c.acked() for c in clients)

        for _ in range(3):
            self.make_leader(0)
            if not clients[0].is_alive():
                for c in clients:
                    c.start()
            before = acked()
            time.sleep(1.5)
            # Writes are flowing (a loaded machine may take longer to get going).
            wait_until(lambda b=before: acked() > b, message="writes acknowledged")
            node.kill(15)  # SIGTERM: a graceful shutdown, writes in flight
            time.sleep(0.5)
            node.start()
            node.wait_up(timeout=60)
        time.sleep(1)
        wait_until(
            lambda: acked() > 300 and all(c.acked() for c in clients),
            timeout=60,
            message="more than 300 writes acknowledged, some for every client",
        )
        for c in clients:
            c.stop.set()
        for c in clients:
            c.join(30)
        reader = self.d.client(timeout=30)
        totals: dict[str, int] = {}
        for c in clients:
            for k, v in c.check(self, reader.get(c.key)).items():
                totals[k] = totals.get(k, 0) + v
        self.assertGreater(totals.get("acked", 0), 300, totals)
