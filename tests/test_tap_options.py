"""The twistd plugins' options, parsed in-process: defaults, one-line errors
(exit code 2), config files, and the options the Raft groups share."""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any
from unittest import mock

from twisted.trial import unittest

from eraft_twisted.tap import eraftkdb, eraftkv, eraftmeta


class OptionsCase(unittest.TestCase):
    """Base for tests of one plugin's Options (no tests of its own)."""

    options_class: Any = None

    def parse(self, *argv: str) -> tuple[Any, str]:
        """(parsed options or None if it exited with code 2, stderr)."""
        err = io.StringIO()
        opts = self.options_class()
        with mock.patch("sys.stderr", err):
            try:
                opts.parseOptions(list(argv))
            except SystemExit as e:
                self.assertEqual(e.code, 2)
                return None, err.getvalue()
        return opts, err.getvalue()

    def assert_errors(self, cases: list[tuple[list[str], str]]) -> None:
        name = self.options_class.command_name
        for argv, message in cases:
            opts, err = self.parse(*argv)
            self.assertIsNone(opts, argv)
            self.assertTrue(err.startswith(f"{name}: error: "), err)
            self.assertIn(message, err)
            self.assertEqual(err.count("\n"), 1, err)

    def in_empty_dir(self) -> str:
        cwd = os.getcwd()
        path = tempfile.mkdtemp(prefix="eraft-opts-")
        os.chdir(path)
        self.addCleanup(os.chdir, cwd)
        return path


class EraftKVOptionsTests(OptionsCase):
    options_class = eraftkv.Options

    def test_defaults_are_a_one_node_group_on_localhost(self) -> None:
        self.in_empty_dir()
        opts, err = self.parse()
        self.assertEqual(err, "")
        self.assertEqual(
            (opts["id"], opts["peers"], opts["resp"], opts["data"], opts["meta"], opts["join"]),
            (0, ["127.0.0.1:8088"], "127.0.0.1:6379", "./eraft-data", None, 0),
        )
        self.assertEqual(
            (opts["tick-ms"], opts["timeout"], opts["snapshot-entries"], opts["maxclients"]),
            (100, 5, 10000, 10000),
        )

    def test_bad_options_are_one_line(self) -> None:
        self.in_empty_dir()
        self.assert_errors(
            [
                (["--id", "2", "--peers", "a:1,b:2"], "--id must be between 0 and 1, got 2"),
                (["--peers", "a:1,a:1"], "the same address twice"),
                (["--resp", "6379"], "--resp: "),
                (["--tick-ms", "fast"], "--tick-ms must be an integer"),
                (["--max-bulk", "10"], "--max-bulk must be between 1024"),
                (["--fsync", "sometimes"], "--fsync must be"),
                (["--maxclients", "0"], "--maxclients must be between 1"),
            ]
        )

    def test_data_that_is_a_file_is_refused(self) -> None:
        path = os.path.join(self.in_empty_dir(), "file")
        open(path, "w").close()
        self.assert_errors([(["--data", path], "exists and is not a directory")])

    def test_sharded_mode_options(self) -> None:
        self.in_empty_dir()
        opts, err = self.parse("--meta", "127.0.0.1:8188,127.0.0.1:8189", "--group", "7", "--join")
        self.assertEqual(err, "")
        self.assertEqual(
            (opts["meta"], opts["group"], opts["join"]),
            (["127.0.0.1:8188", "127.0.0.1:8189"], 7, 1),
        )

    def test_config_file_flags_and_command_line_precedence(self) -> None:
        path = os.path.join(self.in_empty_dir(), "kv.conf")
        with open(path, "w") as f:
            f.write("# a node\ntick_ms = 50\njoin = yes\nresp = 127.0.0.1:7000\n")
        opts, err = self.parse("--config", path, "--resp", "127.0.0.1:7001")
        self.assertEqual(err, "")
        self.assertEqual(
            (opts["tick-ms"], opts["join"], opts["resp"]), (50, True, "127.0.0.1:7001")
        )
        with open(path, "w") as f:
            f.write("join = maybe\n")
        self.assert_errors([(["--config", path], "option 'join' takes yes or no")])


class EraftKDBOptionsTests(OptionsCase):
    options_class = eraftkdb.Options

    def test_meta_is_required_and_checked(self) -> None:
        self.assert_errors(
            [
                ([], "--meta is required"),
                (["--meta", "nohost"], "bad address"),
                (["--meta", "127.0.0.1:1", "--listen", "x"], "--listen: "),
                (["--meta", "127.0.0.1:1", "--timeout", "0"], "--timeout must be between 1"),
                (["--meta", "127.0.0.1:1", "--maxclients", "x"], "--maxclients must be"),
            ]
        )
        opts, err = self.parse("--meta", "127.0.0.1:8188")
        self.assertEqual(
            (err, opts["meta"], opts["listen"]), ("", ["127.0.0.1:8188"], "127.0.0.1:12306")
        )


class EraftMetaOptionsTests(OptionsCase):
    options_class = eraftmeta.Options

    def test_shares_the_raft_group_options_with_its_own_defaults(self) -> None:
        self.in_empty_dir()
        opts, err = self.parse("--snapshot-entries", "0")
        self.assertEqual(err, "")
        self.assertEqual(
            (opts["peers"], opts["data"], opts["admin"], opts["snapshot-entries"]),
            (["127.0.0.1:8188"], "./eraft-meta-data", "127.0.0.1:8080", 0),
        )
        self.assert_errors([(["--resp", "127.0.0.1:1"], "option --resp not recognized")])


class SnapshotBytesOptionsTests(OptionsCase):
    """--snapshot-bytes, shared by eraftkv and eraftmeta, and its example configs."""

    def test_default_values_and_errors(self) -> None:
        from eraft_twisted.node.group import RaftGroupServer

        data = self.in_empty_dir()
        for options_class in (eraftkv.Options, eraftmeta.Options):
            self.options_class = options_class
            opts, err = self.parse()
            self.assertEqual((err, opts["snapshot-bytes"]), ("", 64 * 1024 * 1024))
            opts, err = self.parse("--snapshot-bytes", "0", "--snapshot-entries", "0")
            self.assertEqual((err, opts["snapshot-bytes"], opts["snapshot-entries"]), ("", 0, 0))
            opts, err = self.parse("--snapshot-bytes", "1048576")
            self.assertEqual(RaftGroupServer.group_options(opts)["snapshot_bytes"], 1048576)
            opts, err = self.parse("--group-token", "prod-eu-1")
            self.assertEqual(RaftGroupServer.group_options(opts)["group_token"], "prod-eu-1")
            self.assert_errors(
                [
                    (["--snapshot-bytes", "-1"], "--snapshot-bytes must be between 0 and"),
                    (["--snapshot-bytes", "64mb"], "--snapshot-bytes must be an integer"),
                ]
            )
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for options_class, name in [
            (eraftkv.Options, "eraftkv.conf"),
            (eraftmeta.Options, "eraftmeta.conf"),
        ]:
            self.options_class = options_class
            opts, err = self.parse(
                "--config", os.path.join(root, "etc", name), "--data", os.path.join(data, name)
            )
            self.assertEqual(err, "", name)
            self.assertEqual(
                (opts["snapshot-entries"], opts["snapshot-bytes"]), (10000, 64 * 1024 * 1024), name
            )


class ClientLimitOptionsTests(OptionsCase):
    """The client-limit options eraftkv and eraftkdb share, and the example config files."""

    def test_defaults_are_the_resp_layers(self) -> None:
        from eraft_twisted.resp.protocol import MAX_REQUEST, OUTPUT_LIMIT

        self.in_empty_dir()
        for options_class, argv in [(eraftkv.Options, []), (eraftkdb.Options, ["--meta", "h:1"])]:
            self.options_class = options_class
            opts, err = self.parse(*argv)
            self.assertEqual(err, "")
            self.assertEqual(
                (
                    opts["client-output-buffer-limit"],
                    opts["client-query-buffer-limit"],
                    opts["client-idle-timeout"],
                ),
                (OUTPUT_LIMIT, MAX_REQUEST, 0),
            )
        self.assertEqual((OUTPUT_LIMIT, MAX_REQUEST), (64 * 1024 * 1024, 1024 * 1024 * 1024))

    def test_values_and_bad_values(self) -> None:
        self.in_empty_dir()
        for options_class, argv in [(eraftkv.Options, []), (eraftkdb.Options, ["--meta", "h:1"])]:
            self.options_class = options_class
            opts, err = self.parse(
                *argv,
                "--client-output-buffer-limit",
                "0",
                "--client-query-buffer-limit",
                "1048576",
                "--client-idle-timeout",
                "300",
            )
            self.assertEqual(err, "")
            self.assertEqual(
                (
                    opts["client-output-buffer-limit"],
                    opts["client-query-buffer-limit"],
                    opts["client-idle-timeout"],
                ),
                (0, 1048576, 300),
            )
            self.assert_errors(
                [
                    (
                        [*argv, "--client-output-buffer-limit", "-1"],
                        "--client-output-buffer-limit must be between 0 and",
                    ),
                    (
                        [*argv, "--client-output-buffer-limit", "64mb"],
                        "--client-output-buffer-limit must be an integer, got '64mb'",
                    ),
                    (
                        [*argv, "--client-query-buffer-limit", "10"],
                        "--client-query-buffer-limit must be between 1024 and",
                    ),
                    (
                        [*argv, "--client-idle-timeout", "1.5"],
                        "--client-idle-timeout must be an integer",
                    ),
                    (
                        [*argv, "--client-idle-timeout", "-5"],
                        "--client-idle-timeout must be between 0 and",
                    ),
                ]
            )

    def test_example_config_files(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        data = self.in_empty_dir()
        for options_class, name, argv in [
            (eraftkv.Options, "eraftkv.conf", ["--data", os.path.join(data, "d")]),
            (eraftkdb.Options, "eraftkdb.conf", []),
        ]:
            self.options_class = options_class
            opts, err = self.parse("--config", os.path.join(root, "etc", name), *argv)
            self.assertEqual(err, "", name)
            self.assertEqual(
                (
                    opts["maxclients"],
                    opts["client-output-buffer-limit"],
                    opts["client-query-buffer-limit"],
                    opts["client-idle-timeout"],
                ),
                (10000, 64 * 1024 * 1024, 1024 * 1024 * 1024, 0),
                name,
            )
