"""The cluster-config state machine: pure, deterministic operations."""

from __future__ import annotations

import random

from twisted.trial import unittest

from eraft_twisted.meta.config import (
    SLOTS,
    UNOWNED,
    BadRequest,
    ClusterConfig,
    ConfigHistory,
    Conflict,
    UnknownConfig,
    initial_config,
    join,
    leave,
    move,
    moved_slots,
    ranges_from_owners,
    rebalance,
    validate_op,
)


def servers(gid: int, n: int = 3) -> list[str]:
    return [f"127.0.{gid}.{i}:7000" for i in range(n)]


def build(*gids: int) -> ClusterConfig:
    cfg = initial_config()
    for g in gids:
        cfg = join(cfg, g, servers(g))
    return rebalance(cfg)


class ConfigTests(unittest.TestCase):
    def assertWellFormed(self, cfg: ClusterConfig) -> None:
        cfg.check()
        owners = cfg.owners()
        self.assertEqual(len(owners), SLOTS)
        if cfg.groups:
            self.assertNotIn(UNOWNED, owners)
        self.assertEqual(sum(cfg.slot_counts().values()), SLOTS if cfg.groups else 0)

    def test_config_zero_is_empty(self) -> None:
        cfg = initial_config()
        self.assertEqual(cfg.num, 0)
        self.assertEqual(cfg.groups, {})
        self.assertEqual(cfg.ranges, ((0, 16383, UNOWNED),))
        self.assertEqual(cfg.migrations, ())
        self.assertWellFormed(cfg)

    def test_first_join_gets_every_slot_later_joins_none(self) -> None:
        c1 = join(initial_config(), 1, servers(1))
        self.assertEqual(c1.num, 1)
        self.assertEqual(c1.ranges, ((0, 16383, 1),))
        c2 = join(c1, 2, servers(2))
        self.assertEqual(c2.num, 2)
        self.assertEqual(c2.ranges, ((0, 16383, 1),))
        self.assertEqual(c2.slot_counts(), {1: SLOTS, 2: 0})
        self.assertEqual(c2.groups[2], tuple(servers(2)))
        self.assertWellFormed(c2)

    def test_rejoin_same_servers_is_no_change_new_servers_is_a_new_config(self) -> None:
        c1 = join(initial_config(), 1, servers(1))
        self.assertIs(join(c1, 1, servers(1)), c1)
        c2 = join(c1, 1, servers(1, 5))
        self.assertEqual(c2.num, 2)
        self.assertEqual(len(c2.groups[1]), 5)
        self.assertEqual(c2.ranges, c1.ranges)

    def test_join_validation(self) -> None:
        c = initial_config()
        for gid in (0, -1, 2**31, "1", True, 1.0):
            self.assertRaises(BadRequest, join, c, gid, servers(1))
        for bad in ([], "a:1", ["nohostport"], ["h:0"], ["h:99999"], ["h:1", "h:1"], [1]):
            self.assertRaises(BadRequest, join, c, 1, bad)
        c1 = join(c, 1, ["h:1", "h:2"])
        e = self.assertRaises(Conflict, join, c1, 2, ["h:3", "h:2"])
        self.assertIn("h:2 already belongs to group 1", str(e))

    def test_rebalance_two_groups_evenly(self) -> None:
        c = build(1, 2)
        self.assertEqual(c.slot_counts(), {1: 8192, 2: 8192})
        self.assertEqual(c.ranges, ((0, 8191, 1), (8192, 16383, 2)))
        self.assertIs(rebalance(c), c)  # already balanced: no new config

    def test_third_group_takes_a_third_only_from_the_others(self) -> None:
        two = build(1, 2)
        before = two.owners()
        three = rebalance(join(two, 3, servers(3)))
        after = three.owners()
        moved = [s for s in range(SLOTS) if before[s] != after[s]]
        self.assertEqual(len(moved), SLOTS // 3)
        self.assertTrue(all(after[s] == 3 for s in moved))
        counts = three.slot_counts()
        self.assertEqual(sorted(counts.values()), [5461, 5461, 5462])
        self.assertEqual(moved_slots(two, three), SLOTS // 3)
        self.assertWellFormed(three)

    def test_rebalance_moves_the_minimum_from_any_distribution(self) -> None:
        rng = random.Random(7)
        for trial in range(30):
            ngroups = rng.randint(1, 9)
            cfg = initial_config()
            for g in range(1, ngroups + 1):
                cfg = join(cfg, g * 10, servers(g))
            for _ in range(rng.randint(0, 6)):
                lo = rng.randrange(SLOTS)
                hi = min(SLOTS - 1, lo + rng.randrange(4000))
                cfg = move(cfg, lo, hi, rng.choice(list(cfg.groups)))
            counts = cfg.slot_counts()
            base, extra = divmod(SLOTS, ngroups)
            # Lower bound: every group must end at base or base+1.
            by_count = sorted(counts.values(), reverse=True)
            floor = sum(max(0, c - base - (1 if i < extra else 0)) for i, c in enumerate(by_count))
            new = rebalance(cfg)
            self.assertEqual(moved_slots(cfg, new), floor, f"trial {trial}")
            self.assertLessEqual(
                max(new.slot_counts().values()) - min(new.slot_counts().values()), 1
            )
            before, after = cfg.owners(), new.owners()
            for s in range(SLOTS):
                # A slot only moves from a group above its target to one below.
                if before[s] != after[s]:
                    self.assertGreater(counts[before[s]], base)
                    self.assertLess(counts[after[s]], base + 1)
            self.assertWellFormed(new)

    def test_leave_moves_only_the_leavers_slots_and_stays_balanced(self) -> None:
        three = build(1, 2, 3)
        before = three.owners()
        two = leave(three, 2)
        after = two.owners()
        self.assertNotIn(2, two.groups)
        for s in range(SLOTS):
            if before[s] != 2:
                self.assertEqual(after[s], before[s])
            else:
                self.assertIn(after[s], (1, 3))
        self.assertEqual(two.slot_counts(), {1: 8192, 3: 8192})
        self.assertWellFormed(two)

    def test_leave_fills_the_emptiest_groups_first(self) -> None:
        c = join(build(1, 2), 3, servers(3))  # 3 owns nothing yet
        c = leave(c, 1)
        self.assertEqual(c.slot_counts(), {2: 8192, 3: 8192})

    def test_leave_errors(self) -> None:
        one = build(1)
        self.assertRaises(Conflict, leave, one, 9)
        e = self.assertRaises(Conflict, leave, one, 1)
        self.assertIn("last group", str(e))
        # A last group owning nothing cannot exist, but a slotless one may leave.
        c = join(one, 2, servers(2))
        self.assertEqual(leave(c, 2).groups, {1: tuple(servers(1))})

    def test_move(self) -> None:
        c = build(1, 2)
        m = move(c, 100, 199, 2)
        self.assertEqual(m.num, c.num + 1)
        self.assertEqual(m.ranges, ((0, 99, 1), (100, 199, 2), (200, 8191, 1), (8192, 16383, 2)))
        self.assertEqual(m.owner(99), 1)
        self.assertEqual(m.owner(100), 2)
        self.assertEqual(m.owner(16383), 2)
        self.assertEqual(m.ranges_of(2), [(100, 199), (8192, 16383)])
        self.assertIs(move(m, 150, 160, 2), m)  # already there
        back = move(m, 100, 199, 1)
        self.assertEqual(back.ranges, c.ranges)
        self.assertEqual(back.num, c.num + 2)
        self.assertRaises(Conflict, move, c, 0, 1, 3)
        for lo, hi in ((-1, 5), (5, 16384), (9, 8), ("0", 1)):
            self.assertRaises(BadRequest, move, c, lo, hi, 1)

    def test_every_slot_owned_exactly_once_through_random_histories(self) -> None:
        rng = random.Random(42)
        h = ConfigHistory()
        for _ in range(300):
            op: list = rng.choice(
                [
                    ["join", rng.randint(1, 8), servers(rng.randint(1, 8), rng.randint(1, 3))],
                    ["leave", rng.randint(1, 8)],
                    ["move", *sorted(rng.sample(range(SLOTS), 2)), rng.randint(1, 8)],
                    ["rebalance"],
                ]
            )
            try:
                cfg, _ = h.apply(op)
            except (BadRequest, Conflict):
                continue
            self.assertWellFormed(cfg)
        for n, cfg in enumerate(h.configs):
            self.assertEqual(cfg.num, n)

    def test_deterministic(self) -> None:
        def history(seed: int) -> list[ClusterConfig]:
            rng = random.Random(seed)
            h = ConfigHistory()
            for g in range(1, 6):
                h.apply(["join", g, servers(g)])
                h.apply(["rebalance"])
                lo = rng.randrange(SLOTS - 100)
                h.apply(["move", lo, lo + 99, rng.randint(1, g)])
            h.apply(["leave", 3])
            h.apply(["rebalance"])
            return h.configs

        a, b = history(3), history(3)
        self.assertEqual([c.to_dict() for c in a], [c.to_dict() for c in b])

    def test_history_query_and_apply_results(self) -> None:
        h = ConfigHistory()
        cfg, result = h.apply(["join", 1, servers(1)])
        self.assertEqual(result, {"config": cfg.to_dict(), "changed": True, "moved": SLOTS})
        h.apply(["join", 2, servers(2)])
        _, result = h.apply(["rebalance"])
        self.assertEqual(result["moved"], 8192)
        _, result = h.apply(["rebalance"])
        self.assertEqual(
            (result["changed"], result["moved"], result["config"]["num"]), (False, 0, 3)
        )
        self.assertEqual(h.query().num, 3)
        self.assertEqual(h.query(-1).num, 3)
        self.assertEqual(h.query(1).ranges, ((0, 16383, 1),))
        self.assertEqual(h.query(0), initial_config())
        self.assertRaises(UnknownConfig, h.query, 4)
        self.assertRaises(UnknownConfig, h.query, -2)
        # A refused operation leaves the history as it was.
        self.assertRaises(Conflict, h.apply, ["leave", 7])
        self.assertEqual(len(h.configs), 4)

    def test_validate_op(self) -> None:
        for op in ([], "join", ["nope"], ["join", 1], ["rebalance", 1], [1, 2], ["leave", "x"]):
            self.assertRaises(BadRequest, validate_op, op)
        self.assertEqual(validate_op(["move", 0, 1, 2]), ("move", [0, 1, 2]))

    def test_dict_round_trip_and_consistency_checks(self) -> None:
        cfg = move(build(1, 2, 3), 0, 9, 3)
        self.assertEqual(ClusterConfig.from_dict(cfg.to_dict()), cfg)
        d = cfg.to_dict()
        self.assertEqual(set(d), {"num", "groups", "ranges", "migrations"})
        self.assertEqual(d["migrations"], [])
        d["ranges"] = d["ranges"][1:]
        self.assertRaises(ValueError, ClusterConfig.from_dict, d)
        d = cfg.to_dict()
        d["ranges"][0][2] = 99
        self.assertRaises(ValueError, ClusterConfig.from_dict, d)
        self.assertRaises(ValueError, ranges_from_owners, [1] * 10)
