"""eraftctl waiting for data to move: slot ranges changed, ranges done,
the progress bar on a terminal and off it."""

from __future__ import annotations

import io
import json
from typing import Any

from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.trial import unittest

from eraft_twisted.ctl.args import parse_args
from eraft_twisted.ctl.commands import run
from eraft_twisted.ctl.formatting import format_size
from eraft_twisted.ctl.groups import KVClient
from eraft_twisted.ctl.meta import MetaClient
from eraft_twisted.ctl.progress import changed_ranges, progress_bar, ranges_done, wait_for_data
from eraft_twisted.meta.http import AdminAPI
from tests.meta.test_http import FakeNode


class FakeResponse:
    def __init__(self, body: Any, code: int = 200) -> None:
        self.code = code
        self.body = json.dumps(body).encode()


class ScriptedMigrations:
    """StubTreq, except that GET /migrations answers the next scripted report."""

    def __init__(self, stub: Any, reports: list[dict[str, Any]]) -> None:
        self.stub = stub
        self.reports = reports

    def request(self, method: str, url: str, **kw: Any) -> defer.Deferred[Any]:
        if url.endswith("/migrations"):
            return defer.succeed(FakeResponse(self.reports.pop(0)))
        return self.stub.request(method, url, **kw)

    def content(self, response: Any) -> defer.Deferred[bytes]:
        if isinstance(response, FakeResponse):
            return defer.succeed(response.body)
        return self.stub.content(response)


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


OLD = {"num": 3, "groups": {"1": [], "2": []}, "ranges": [[0, 8191, 1], [8192, 16383, 2]]}
NEW = {
    "num": 4,
    "groups": {"1": [], "2": [], "3": []},
    "ranges": [[0, 99, 3], [100, 8191, 1], [8192, 8291, 3], [8292, 8391, 1], [8392, 16383, 2]],
}


def group_report(gid: int, config: int, incoming: str = "", copying: Any = ()) -> dict[str, Any]:
    return {
        "group": gid,
        "config": config,
        "incoming": incoming,
        "outgoing": "",
        "release_pending": "",
        "copying": list(copying),
    }


class ProgressTests(unittest.TestCase):
    def test_progress_bar(self) -> None:
        self.assertEqual(
            progress_bar(3, 8, 12345, 1_234_567),
            "[#######.............] 3/8 ranges  12,345 keys  1.2 MB copied",
        )
        self.assertEqual(
            progress_bar(0, 1, 0, 0), "[....................] 0/1 range  0 keys  0 B copied"
        )
        self.assertEqual(progress_bar(7, 8, 1, 999)[:22], "[#################...]")
        self.assertEqual(progress_bar(0, 0, 0, 0)[:27], "[####################] 0/0 ")
        self.assertEqual(progress_bar(1, 2, 0, 0, width=4)[:6], "[##..]")

    def test_format_size(self) -> None:
        self.assertEqual(
            [format_size(n) for n in (0, 999, 1000, 1_250, 2_500_000_000, 7 * 10**12)],
            ["0 B", "999 B", "1.0 kB", "1.2 kB", "2.5 GB", "7.0 TB"],
        )

    def test_changed_ranges(self) -> None:
        self.assertEqual(
            changed_ranges(OLD, NEW),
            [(0, 99, 1, 3), (8192, 8291, 2, 3), (8292, 8391, 2, 1)],
        )
        self.assertEqual(changed_ranges(NEW, NEW), [])
        unowned = {"num": 0, "groups": {}, "ranges": [[0, 16383, 0]]}
        self.assertEqual(changed_ranges(unowned, OLD), [(0, 8191, 0, 1), (8192, 16383, 0, 2)])

    def test_ranges_done(self) -> None:
        moved = changed_ranges(OLD, NEW)

        def report(*groups: dict[str, Any]) -> dict[str, Any]:
            return {"num": 4, "groups": list(groups), "in_flight": 1}

        # Nobody has applied config 4 yet: nothing is done.
        r = report(group_report(1, 3), group_report(2, 3), group_report(3, 3))
        self.assertEqual(ranges_done(moved, r, 4), 0)
        # Group 3 applied it and still pulls 8192-8291; group 1 finished 8292-8391.
        r = report(group_report(1, 4), group_report(2, 4), group_report(3, 4, "8200-8291:g2@4"))
        self.assertEqual(ranges_done(moved, r, 4), 2)
        r = report(group_report(1, 4), {"group": 3, "error": "no server answered"})
        self.assertEqual(ranges_done(moved, r, 4), 1)
        r = report(group_report(1, 4), group_report(2, 4), group_report(3, 4))
        self.assertEqual(ranges_done(moved, r, 4), 3)
        # Slots going to nobody, or to a group gone since, have nothing to wait for.
        self.assertEqual(ranges_done([(0, 9, 1, 0), (10, 19, 1, 5)], report(), 4), 2)

    def wait(self, reports: list[dict[str, Any]], out: io.StringIO, show: bool = True) -> None:
        node = FakeNode()
        stub = StubTreq(AdminAPI(node, node.app, lambda: {}))
        client = MetaClient(["http://127.0.0.1:8080"], ScriptedMigrations(stub, reports))
        for path, body in (
            ("/join", {"group": 1, "servers": ["h:1"]}),
            ("/join", {"group": 2, "servers": ["h:2"]}),
            ("/rebalance", {}),  # config 3: 0-8191 on group 1, the rest on group 2
            ("/move", {"lo": 8192, "hi": 8291, "group": 1}),  # config 4
        ):
            self.successResultOf(defer.ensureDeferred(client.request("POST", path, body)))
        clock = task.Clock()
        d = defer.ensureDeferred(wait_for_data(client, 4, out, show, clock))
        while not d.called:
            clock.advance(0.5)
        self.successResultOf(d)
        self.assertEqual(reports, [])

    def reports(self) -> list[dict[str, Any]]:
        copy = {"slots": "8192-8291", "config": 4, "keys": 1234, "bytes": 56_789}
        old_copy = {"slots": "0-9", "config": 2, "keys": 99, "bytes": 99}
        return [
            {"num": 4, "groups": [group_report(1, 3), group_report(2, 4)], "in_flight": 1},
            {
                "num": 4,
                "groups": [
                    group_report(1, 4, "8192-8291:g2@4", [copy, old_copy]),
                    group_report(2, 4),
                ],
                "in_flight": 1,
            },
            {"num": 4, "groups": [group_report(1, 4), group_report(2, 4)], "in_flight": 0},
        ]

    def test_wait_draws_a_bar_on_a_terminal(self) -> None:
        out = TTY()
        self.wait(self.reports(), out)
        self.assertEqual(
            out.getvalue(),
            "\rmoving data: [....................] 0/1 range  0 keys  0 B copied"
            "\rmoving data: [....................] 0/1 range  1,234 keys  56.8 kB copied"
            "\rmoving data: [####################] 1/1 range  1,234 keys  56.8 kB copied\n",
        )

    def test_wait_prints_the_final_bar_once_when_not_a_terminal(self) -> None:
        out = io.StringIO()
        self.wait(self.reports(), out)
        self.assertEqual(
            out.getvalue(),
            "moving data: [####################] 1/1 range  1,234 keys  56.8 kB copied\n",
        )
        out = TTY()
        self.wait(self.reports(), out, show=False)
        self.assertEqual(out.getvalue(), "")

    def test_move_waits_and_json_prints_no_bar(self) -> None:
        done = {"num": 3, "groups": [group_report(1, 3), group_report(2, 3)], "in_flight": 0}
        pulling = {
            "num": 3,
            "groups": [group_report(1, 3), group_report(2, 3, "0-99:g1@3")],
            "in_flight": 1,
        }
        for flag in ("--json", "--timeout=5"):
            node = FakeNode()
            stub = StubTreq(AdminAPI(node, node.app, lambda: {}))
            for argv in (["join", "1", "h:1"], ["join", "2", "h:2"]):
                args = parse_args(["--meta", "127.0.0.1:8080", *argv, "--no-wait"])
                self.successResultOf(defer.ensureDeferred(run(args, stub, io.StringIO())))
            out = TTY() if flag == "--json" else io.StringIO()
            args = parse_args(["--meta", "127.0.0.1:8080", flag, "move", "0", "99", "2"])
            http = ScriptedMigrations(stub, [pulling, done])
            clock = task.Clock()
            d = defer.ensureDeferred(run(args, http, out, KVClient(clock), clock))
            self.assertNoResult(d)
            clock.advance(0.5)
            self.assertEqual(self.successResultOf(d), 0)
            self.assertEqual(http.reports, [])
            if flag == "--json":
                self.assertEqual(json.loads(out.getvalue())["config"]["num"], 3)
            else:
                self.assertTrue(
                    out.getvalue().startswith(
                        "moving data: [####################] 1/1 range  0 keys  0 B copied\n"
                        "config 3: slots 0-99 moved to group 2"
                    ),
                    out.getvalue(),
                )
