"""Smoke test of the differential harness on strings and a hash."""

from __future__ import annotations

from tests.differential import DifferentialCase


class SmokeTests(DifferentialCase):
    def test_strings_and_a_hash(self) -> None:
        k, h = self.key(), self.key("h")
        self.check(
            ("SET", k, "1"),
            ("GET", k),
            ("HSET", h, "a", "1", "b", "2"),
            ("HGETALL", h),
            ("HGET", h, "a"),
            ("GET", h),
            ("TYPE", h),
            ("HSET", h, "a"),
            ("DEL", h, k),
            ("HGETALL", h),
        )

    def test_the_harness_sees_a_difference(self) -> None:
        # LPUSH is not there yet in this smoke test's time; any command the
        # two answer differently must fail the check.
        k = self.key()
        self.conns[("eraft", 2)].call("SET", k, "x")
        with self.assertRaises(self.failureException):
            self.check(("GET", k))
