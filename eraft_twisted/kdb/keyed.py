"""The data commands the router sends to the group owning their key(s):
hashes, lists, sets, sorted sets, and the key and string commands besides
the ones :mod:`.router` handles itself. Arity and key positions are
Redis 7's (``COMMAND INFO``); every key of one command must be in one slot
(``-CROSSSLOT`` otherwise, as Redis Cluster answers)."""

from __future__ import annotations

from ..resp.commands import CommandError

KEYED: dict[str, tuple[int, int, int, int, bool]] = {
    # name: (arity, first key, last key, step, read-only)
    "hset": (-4, 1, 1, 1, False), "hsetnx": (4, 1, 1, 1, False), "hget": (3, 1, 1, 1, True),
    "hmget": (-3, 1, 1, 1, True), "hmset": (-4, 1, 1, 1, False), "hdel": (-3, 1, 1, 1, False),
    "hlen": (2, 1, 1, 1, True), "hexists": (3, 1, 1, 1, True), "hgetall": (2, 1, 1, 1, True),
    "hkeys": (2, 1, 1, 1, True), "hvals": (2, 1, 1, 1, True), "hincrby": (4, 1, 1, 1, False),
    "hincrbyfloat": (4, 1, 1, 1, False), "hstrlen": (3, 1, 1, 1, True),
    "hscan": (-3, 1, 1, 1, True), "hrandfield": (-2, 1, 1, 1, True),
    "lpush": (-3, 1, 1, 1, False), "rpush": (-3, 1, 1, 1, False),
    "lpushx": (-3, 1, 1, 1, False), "rpushx": (-3, 1, 1, 1, False),
    "lpop": (-2, 1, 1, 1, False), "rpop": (-2, 1, 1, 1, False), "llen": (2, 1, 1, 1, True),
    "lrange": (4, 1, 1, 1, True), "lindex": (3, 1, 1, 1, True), "lset": (4, 1, 1, 1, False),
    "lrem": (4, 1, 1, 1, False), "ltrim": (4, 1, 1, 1, False), "linsert": (5, 1, 1, 1, False),
    "lpos": (-3, 1, 1, 1, True), "lmove": (5, 1, 2, 1, False), "rpoplpush": (3, 1, 2, 1, False),
    "sadd": (-3, 1, 1, 1, False), "srem": (-3, 1, 1, 1, False), "smembers": (2, 1, 1, 1, True),
    "sismember": (3, 1, 1, 1, True), "smismember": (-3, 1, 1, 1, True),
    "scard": (2, 1, 1, 1, True), "spop": (-2, 1, 1, 1, False),
    "srandmember": (-2, 1, 1, 1, True), "sinter": (-2, 1, -1, 1, True),
    "sunion": (-2, 1, -1, 1, True), "sdiff": (-2, 1, -1, 1, True),
    "sinterstore": (-3, 1, -1, 1, False), "sunionstore": (-3, 1, -1, 1, False),
    "sdiffstore": (-3, 1, -1, 1, False), "sintercard": (-3, 0, 0, 0, True),
    "smove": (4, 1, 2, 1, False), "sscan": (-3, 1, 1, 1, True),
    "zadd": (-4, 1, 1, 1, False), "zrem": (-3, 1, 1, 1, False), "zscore": (3, 1, 1, 1, True),
    "zmscore": (-3, 1, 1, 1, True), "zincrby": (4, 1, 1, 1, False),
    "zcard": (2, 1, 1, 1, True), "zcount": (4, 1, 1, 1, True), "zrange": (-4, 1, 1, 1, True),
    "zrangebyscore": (-4, 1, 1, 1, True), "zrevrange": (-4, 1, 1, 1, True),
    "zrevrangebyscore": (-4, 1, 1, 1, True), "zrangebylex": (-4, 1, 1, 1, True),
    "zrevrangebylex": (-4, 1, 1, 1, True), "zlexcount": (4, 1, 1, 1, True),
    "zrank": (-3, 1, 1, 1, True), "zrevrank": (-3, 1, 1, 1, True),
    "zremrangebyrank": (4, 1, 1, 1, False), "zremrangebyscore": (4, 1, 1, 1, False),
    "zremrangebylex": (4, 1, 1, 1, False), "zpopmin": (-2, 1, 1, 1, False),
    "zpopmax": (-2, 1, 1, 1, False), "zrangestore": (-5, 1, 2, 1, False),
    "zunionstore": (-4, 1, 1, 1, False), "zinterstore": (-4, 1, 1, 1, False),
    "zscan": (-3, 1, 1, 1, True),
    "rename": (3, 1, 2, 1, False), "renamenx": (3, 1, 2, 1, False), "copy": (-3, 1, 2, 1, False),
    "touch": (-2, 1, -1, 1, True), "setex": (4, 1, 1, 1, False), "psetex": (4, 1, 1, 1, False),
    "getex": (-2, 1, 1, 1, False), "incrbyfloat": (3, 1, 1, 1, False),
    "getrange": (4, 1, 1, 1, True), "setrange": (4, 1, 1, 1, False),
    "msetnx": (-3, 1, -1, 2, False),
}  # fmt: skip

NUMKEYS = {"sintercard": 1, "zunionstore": 2, "zinterstore": 2}
"""Commands whose keys follow a count at this position (the destination,
if any, before it)."""

KEYED_READONLY = frozenset(name for name, spec in KEYED.items() if spec[4])


def command_keys(name: str, argv: list[bytes]) -> list[bytes]:
    """The keys of ``argv`` (a KEYED command ``name`` of the right arity)."""
    at = NUMKEYS.get(name)
    if at is not None:
        try:
            count = int(argv[at])
        except ValueError:
            raise CommandError("numkeys should be greater than 0") from None
        if count <= 0 or at + count >= len(argv):
            raise CommandError("Number of keys can't be greater than number of args")
        return argv[1:at] + argv[at + 1 : at + 1 + count]
    _, first, last, step, _ = KEYED[name]
    last = last if last >= 0 else len(argv) + last
    return argv[first : last + 1 : step]
