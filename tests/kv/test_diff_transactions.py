"""MULTI/EXEC/DISCARD/WATCH/UNWATCH against a real redis-server."""

from __future__ import annotations

from tests.differential import DifferentialCase, RawConnection


class TransactionTests(DifferentialCase):
    def test_queued_commands_run_in_one_exec(self) -> None:
        a, h = self.key("{t}a"), self.key("{t}h")
        self.check(
            ("SET", a, "1"),
            ("MULTI",),
            ("INCR", a),
            ("GET", a),
            ("HSET", h, "f", "v"),
            ("HGETALL", h),
            ("SET", a, "x", "XX", "NX"),  # a syntax error fails that command only
            ("INCR", h),  # WRONGTYPE fails that command only
            ("PING",),
            ("EXEC",),
            ("GET", a),
        )

    def test_reads_only(self) -> None:
        a = self.key()
        self.check(("SET", a, "v"), ("MULTI",), ("GET", a), ("EXISTS", a), ("TTL", a), ("EXEC",))

    def test_queue_errors_abort_and_misuse_errors(self) -> None:
        a = self.key()
        self.check(
            ("EXEC",),
            ("DISCARD",),
            ("MULTI",),
            ("MULTI",),
            ("SET", a, "1"),
            ("NOSUCHCOMMAND", a),
            ("GET",),
            ("EXEC",),
            ("GET", a),
            ("MULTI",),
            ("WATCH", a),
            ("SET", a, "2"),
            ("DISCARD",),
            ("GET", a),
            ("MULTI",),
            ("EXEC",),
        )

    def test_watch_aborts_when_another_client_writes(self) -> None:
        a, b = self.key("{w}a"), self.key("{w}b")
        for protocol in (2, 3):
            self.check(("SET", a, "1"))
            replies = []
            for port in (self.redis_port, self.node_port):
                me = self.conns[("redis" if port == self.redis_port else "eraft", protocol)]
                other = RawConnection(port)
                try:
                    me.call("WATCH", a, b)
                    other.call("INCR", a)
                    me.call("MULTI")
                    me.call("SET", b, "from-tx")
                    replies.append((me.call("EXEC"), me.call("GET", b)))
                    # Not changed since WATCH: applies; UNWATCH forgets.
                    me.call("WATCH", a)
                    me.call("UNWATCH")
                    other.call("INCR", a)
                    me.call("WATCH", b)
                    me.call("MULTI")
                    me.call("SET", b, "second")
                    replies.append((me.call("EXEC"), me.call("GET", b)))
                    # A watched key the transaction itself does not touch.
                    me.call("WATCH", a)
                    other.call("DEL", a)
                    me.call("MULTI")
                    me.call("SET", b, "third")
                    replies.append((me.call("EXEC"), me.call("GET", b)))
                finally:
                    other.close()
            n = len(replies) // 2
            self.assertEqual(replies[n:], replies[:n])
            self.assertEqual(replies[0][0], ("*", None) if protocol == 2 else ("_", None))
