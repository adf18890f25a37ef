"""BLPOP, BRPOP, BLMOVE, BRPOPLPUSH against a real redis-server: what they
answer when an element is there, when none comes in time, and on bad input."""

from __future__ import annotations

import threading
import time

from tests.differential import DifferentialCase, RawConnection


class BlockingDifferentialTests(DifferentialCase):
    def test_immediate_pops_timeouts_and_errors(self) -> None:
        a, b, s = self.key("{b}a"), self.key("{b}b"), self.key("{b}s")
        self.check(
            ("RPUSH", b, "1", "2", "3"),
            ("BLPOP", a, b, "1"),
            ("BRPOP", a, b, "1"),
            ("BLPOP", a, "0.05"),
            ("BLMOVE", b, a, "RIGHT", "LEFT", "1"),
            ("BRPOPLPUSH", a, b, "1"),
            ("LRANGE", b, "0", "-1"),
            ("BLMOVE", self.key("{b}none"), a, "LEFT", "LEFT", "0.05"),
            ("BRPOPLPUSH", self.key("{b}none"), a, "0.05"),
            ("BLPOP", a, "-1"),
            ("BLPOP", a, "x"),
            ("BLPOP", a, "inf"),
            ("BLPOP", a, "nan"),
            ("BLPOP", a, " 1"),
            ("BLPOP", a, "1e17"),
            ("BLPOP", a, "-1.5"),
            ("RPUSH", a, "h"),
            ("BLPOP", a, "0x10"),
            ("BLMOVE", b, a, "UP", "LEFT", "1"),
            ("BLPOP", a),
            ("SET", s, "x"),
            ("BLPOP", s, "1"),
            ("MULTI",),
            ("BLPOP", self.key("{b}none"), "0"),
            ("RPUSH", a, "z"),
            ("BRPOP", a, "0"),
            ("EXEC",),
        )

    def test_a_push_wakes_a_waiting_client(self) -> None:
        results = {}
        key = self.key("{w}q")
        for name, port in (("redis", self.redis_port), ("eraft", self.node_port)):
            waiting = RawConnection(port)
            pusher = RawConnection(port)
            got: dict[str, object] = {}

            def wait(conn: RawConnection = waiting, into: dict[str, object] = got) -> None:
                into["r"] = conn.call("BLPOP", key, "5")

            t = threading.Thread(target=wait)
            started = time.monotonic()
            t.start()
            time.sleep(0.3)
            pusher.call("RPUSH", key, "hello")
            t.join(10)
            results[name] = (got.get("r"), time.monotonic() - started < 3)
            self.assertEqual(pusher.call("LLEN", key), (":", 0))
            waiting.close()
            pusher.close()
        self.assertEqual(results["eraft"], results["redis"])
        self.assertEqual(results["redis"][1], True)
