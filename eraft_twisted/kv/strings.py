"""Reads of strings and of any key's type and TTL as named operations, so a
transaction (EXEC) can run them inside its one log entry; outside one they
answer GET, MGET, STRLEN, EXISTS, TYPE, TTL and PTTL after the read barrier."""

from __future__ import annotations

import zlib

from .collection import DataOps, read_op
from .records import TYPE_NAMES, is_live, record_expire, record_rev, record_type, string_of
from .results import Applied, Result, WrongType


class StringReads(DataOps):
    """GET, MGET, STRLEN, EXISTS, TYPE, PTTL as state machine operations."""

    @read_op()
    def op_get(self, now: int, key: bytes) -> Applied:
        return string_of(self.live_record(key, now)), []

    @read_op("list")
    def op_mget(self, now: int, keys: list[bytes]) -> Applied:
        values: list[Result] = []
        for key in keys:
            try:
                values.append(string_of(self.live_record(key, now)))
            except WrongType:
                values.append(None)
        return values, []

    @read_op()
    def op_strlen(self, now: int, key: bytes) -> Applied:
        return len(string_of(self.live_record(key, now)) or b""), []

    @read_op("list")
    def op_exists(self, now: int, keys: list[bytes]) -> Applied:
        return sum(1 for key in keys if self.live_record(key, now) is not None), []

    @read_op()
    def op_type(self, now: int, key: bytes) -> Applied:
        record = self.live_record(key, now)
        return ("none" if record is None else TYPE_NAMES[record_type(record)]), []

    @read_op()
    def op_pttl(self, now: int, key: bytes) -> Applied:
        """Milliseconds left (-1: no TTL, -2: no key), at the log's time."""
        record = self.store.get_record(key)
        if record is None or not is_live(record, now):
            return -2, []
        exp = record_expire(record)
        return (exp - now if exp else -1), []

    @read_op("list")
    def op_revs(self, now: int, keys: list[bytes]) -> Applied:
        """Each key's revision (0: no live key): what WATCH remembers."""
        return [self.revision(key, now) for key in keys], []

    def revision(self, key: bytes, now: int) -> int:
        """The revision of the live value of ``key`` (0 if there is none)."""
        record = self.live_record(key, now)
        if record is None:
            return 0
        # A string written before revisions existed: its expiry and value
        # stand in for one (any write since then gives it a revision).
        return record_rev(record) or -zlib.crc32(record) - 1
