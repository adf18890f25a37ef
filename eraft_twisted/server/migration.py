"""The source side of a slot move: ERAFT.MIGRATE.PULL and ERAFT.MIGRATE.RELEASE."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer

from ..kv.statemachine import Op, encode_op
from ..resp.commands import CommandError, CommandTable
from ..resp.encoder import SimpleString
from ..resp.state import ConnectionState
from ..shard.statemachine import ShardedStateMachine
from ..storage.leveldb import LevelDBStorage
from .seams import GroupNode, raft_failure

Chunk = list[bytes | list[bytes] | int]
"""A PULL reply: ``[next cursor or b"", [key, record, ...], source log time]``."""


class MigrationCommands:
    """The source side: ERAFT.MIGRATE.PULL and ERAFT.MIGRATE.RELEASE (internal)."""

    def __init__(
        self,
        node: GroupNode,
        sm: ShardedStateMachine,
        storage: LevelDBStorage,
        now_ms: Callable[[], int],
    ) -> None:
        self.node = node
        self.sm = sm
        self.storage = storage
        self.now_ms = now_ms

    def register(self, table: CommandTable) -> None:
        table.register("eraft.migrate.pull", -6, ["admin"], self.pull, 0, 0, 0)
        table.register("eraft.migrate.release", 4, ["admin"], self.release, 0, 0, 0)

    @staticmethod
    def _ints(argv: list[bytes]) -> list[int]:
        try:
            return [int(a) for a in argv]
        except ValueError:
            raise CommandError("value is not an integer or out of range") from None

    def pull(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[Chunk]:
        """``num lo hi cursor count [RAW]``: up to ``count`` items of slots
        lo..hi after key ``cursor``, once this group has handed them over at
        config ``num``; replies ``[next cursor or "", [key, record, ...],
        log time]``. With ``RAW`` the keys are DB keys of every slot area
        (records, collection rows, garbage markers), else user keys and
        their records only (what nodes before collections pulled)."""
        num, lo, hi = self._ints(argv[1:4])
        cursor = argv[4] or None
        (count,) = self._ints(argv[5:6])
        if len(argv) > 7 or (len(argv) == 7 and argv[6].upper() != b"RAW"):
            raise CommandError("syntax error")
        raw = len(argv) == 7

        def check() -> int:
            if not self.sm.shards.frozen_for(num, lo, hi):
                raise CommandError(
                    f"slots {lo}-{hi} are not handed over at config {num} here yet",
                    code="TRYAGAIN",
                )
            # The range is frozen: no read here judges its keys after this.
            return int(self.sm.log_time)

        def read(log_time: int) -> defer.Deferred[Chunk]:
            def chunk() -> Chunk:
                if raw:
                    items = list(self.storage.scan_areas(lo, hi, cursor, count))
                else:
                    items = list(self.storage.scan(lo, hi, start_after=cursor, count=count))
                flat = [x for kv in items for x in kv]
                nxt = items[-1][0] if len(items) == count else b""
                return [nxt, flat, log_time]

            return self.storage.reads.run(chunk)

        def flushed(log_time: int) -> defer.Deferred[int]:
            # Every applied write of the range is on disk before we scan it.
            return self.storage.barrier(sync=False).addCallback(lambda _: log_time)

        d = self.node.read(check).addCallback(flushed).addCallback(read)
        return d.addErrback(raft_failure)

    def release(self, conn: ConnectionState, argv: list[bytes]) -> defer.Deferred[SimpleString]:
        """``num lo hi``: the new owner has the range; delete our copy."""
        num, lo, hi = self._ints(argv[1:4])
        d = self.node.propose(encode_op(Op.RELEASE, self.now_ms(), num, lo, hi))
        return d.addCallbacks(lambda _: SimpleString("OK"), raft_failure)
