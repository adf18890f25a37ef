"""COMMAND INFO against a real redis-server: arity and key positions of
every command both serve, so cluster clients (redis-py's RedisCluster,
``redis-cli -c``) route ours as they route Redis's."""

from __future__ import annotations

from tests.differential import DifferentialCase, Reply


def _fields(info: Reply) -> tuple[object, ...]:
    """(arity, first key, last key, step) of one COMMAND INFO entry."""
    kind, items = info
    assert kind == "*", info
    return tuple(item[1] for item in (items[1], items[3], items[4], items[5]))


class CommandInfoTests(DifferentialCase):
    def test_arity_and_key_positions_match_redis(self) -> None:
        conn = self.conns[("eraft", 2)]
        kind, ours = conn.call("COMMAND")
        self.assertEqual(kind, "*")
        names = sorted(entry[1][0][1].decode() for entry in ours)
        self.assertGreater(len(names), 100)
        checked, wrong = [], []
        for name in names:
            if name.startswith("eraft.") or name.startswith("raft."):
                continue
            theirs, mine = self.both("COMMAND", "INFO", name)
            if theirs[1][0] == ("*", None):
                continue  # not a Redis command
            if _fields(mine[1][0]) != _fields(theirs[1][0]):
                wrong.append(f"{name}: ours {_fields(mine[1][0])} redis {_fields(theirs[1][0])}")
            checked.append(name)
        self.assertEqual(wrong, [])
        for must in ("hset", "lpush", "sadd", "zadd", "multi", "exec", "watch", "rename", "lmove"):
            self.assertIn(must, checked)
