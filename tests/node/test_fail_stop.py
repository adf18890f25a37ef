"""Fail-stop: a failed write, a lost log or a broken apply ends the process."""

from __future__ import annotations

import io
import sys
from typing import Any

from twisted.internet import defer, task
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest

from eraft_twisted.node.driver import RaftNode
from eraft_twisted.node.errors import RaftTimeout
from eraft_twisted.node.group import RaftGroupServer
from eraft_twisted.raft.core import Config
from eraft_twisted.raft.types import ConfState, Entry, HardState, Message, MessageType, Role
from eraft_twisted.rpc.codec import message_from_list, message_to_list
from eraft_twisted.storage.leveldb import LevelDBStorage, StorageFailed

MT = MessageType


class App:
    """The smallest Application: results are the payloads."""

    def apply_batch(self, entries: list[Entry], conf_state: ConfState | None) -> list[Any]:
        return [e.data for e in entries]

    def restore_snapshot(self, snapshot: Any) -> None:
        pass


class FailingStorage(LevelDBStorage):
    """In-memory storage whose writes fail once ``failure`` is set."""

    failure: Exception | None = None

    def persist(self, entries: Any = (), hard_state: Any = None, sync: bool = True) -> Any:
        if self.failure is not None:
            return defer.fail(self.failure)
        return super().persist(entries, hard_state, sync)


class Transport:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, msgs: list[Message]) -> None:
        self.sent.extend(msgs)


class FailStopTests(unittest.TestCase):
    def start(self, conf: ConfState, storage: Any = None) -> RaftNode:
        self.clock = task.Clock()
        self.storage = storage or FailingStorage.in_memory(conf)
        node = RaftNode(0, self.storage, App(), self.clock, config=Config(0, election_tick=10))
        node.transport = Transport()  # type: ignore[assignment]
        self.exits: list[str] = []
        node.fail_stop_hook = self.exits.append
        node.startService()
        self.addCleanup(node.stopService)
        self.run_for(0.5)
        return node

    def run_for(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.01)):
            self.clock.advance(0.01)

    def critical_lines(self) -> list[str]:
        lines: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_level") == LogLevel.critical:
                lines.append(event["log_format"].format(**event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        return lines

    def test_a_failed_write_stops_the_node_at_once(self) -> None:
        node = self.start(ConfState((0,)))
        self.assertTrue(node.is_leader)
        critical = self.critical_lines()
        self.storage.failure = StorageFailed("storage of /data failed earlier")
        d = node.propose(b"x")
        self.run_for(0.1)
        reason = "storage failed: storage of /data failed earlier"
        self.assertEqual(self.exits, [reason])
        self.assertEqual(critical, [f"raft node 0 stops: {reason}"])
        # The write was appended: its outcome is unknown, not "not applied".
        self.failureResultOf(d, RaftTimeout)
        # Nothing goes on: no ticks, no messages, no further Ready.
        readies = node.stats["readies"]
        self.run_for(2)
        self.assertEqual(node.stats["readies"], readies)
        self.assertFalse(node.running)

    def test_any_other_failure_persisting_a_ready_is_fatal_too(self) -> None:
        node = self.start(ConfState((0,)))
        self.storage.failure = OSError(28, "No space left on device")
        node.propose(b"x").addErrback(lambda f: None)
        self.run_for(0.1)
        self.assertEqual(len(self.exits), 1)
        self.assertIn("OSError", self.exits[0])
        self.assertIn("No space left on device", self.exits[0])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_fail_stop_is_public_and_happens_once(self) -> None:
        node = self.start(ConfState((0,)))
        node.fail_stop("applying entry 7 failed: bad op")
        node.fail_stop("a second reason")
        self.assertEqual(self.exits, ["applying entry 7 failed: bad op"])
        self.assertEqual(node.failed, "applying entry 7 failed: bad op")

    def test_a_member_that_lost_its_data_exits_with_the_reason(self) -> None:
        node = self.start(ConfState((0, 1, 2)))
        # The leader counts entries up to 9 as stored here; the log is empty.
        beat = Message(MT.HEARTBEAT, to=0, frm=1, term=3, commit=9)
        node.receive_messages([beat])
        self.assertEqual(len(self.exits), 1)
        self.assertIn("node 0 lost raft log entries it had acknowledged", self.exits[0])
        self.assertIn("counts entries up to 9", self.exits[0])
        self.assertIn(node.lost_data_hint, self.exits[0])
        # It never persisted the new term, let alone a vote.
        self.assertEqual(self.storage.hard_state, HardState())
        self.assertEqual(node.raw.role, Role.FOLLOWER)

    def test_ack_check_crosses_the_wire(self) -> None:
        m = Message(MT.ACK_CHECK, to=2, frm=1, term=4, index=57, log_term=3)
        self.assertEqual(message_from_list(message_to_list(m)), m)


class GroupExitTests(unittest.TestCase):
    def test_the_group_server_says_why_on_stderr_and_exits_1(self) -> None:
        server = RaftGroupServer(0, ["127.0.0.1:1"], "unused", "g", reactor=task.Clock())
        server.command = "eraftkv"
        codes: list[int] = []
        self.patch(server, "_exit", codes.append)
        err = io.StringIO()
        self.patch(sys, "__stderr__", err)
        server._fail_stop("storage failed: disk on fire")
        self.assertEqual(err.getvalue(), "eraftkv: fatal: storage failed: disk on fire\n")
        self.assertEqual(codes, [1])
