"""Shared command-line and config-file handling for the twistd plugins.

Every option can also be given in a config file (``--config FILE``) as
``name = value`` lines; ``#`` starts a comment. The command line wins over
the file. A bad option or file is one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from twisted.python import usage

from ..net import parse_address


class ConfigError(Exception):
    """A bad option value or config file."""


def read_config_file(path: str, known: set[str]) -> dict[str, str]:
    """Parse ``name = value`` lines; raises ConfigError with the line number."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    values: dict[str, str] = {}
    for n, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, value = line.partition("=")
        name = name.strip().replace("_", "-")
        if not sep or not name:
            raise ConfigError(f"{path}:{n}: expected 'name = value', got {raw.strip()!r}")
        if name not in known:
            raise ConfigError(f"{path}:{n}: unknown option {name!r}")
        values[name] = value.strip()
    return values


def parse_peers(value: str) -> list[str]:
    """A comma-separated list of host:port, validated."""
    peers = [p.strip() for p in value.split(",") if p.strip()]
    if not peers:
        raise ConfigError("--peers needs at least one host:port")
    for p in peers:
        try:
            parse_address(p)
        except ValueError as e:
            raise ConfigError(str(e)) from e
    if len(set(peers)) != len(peers):
        raise ConfigError("--peers lists the same address twice")
    return peers


class BaseOptions(usage.Options):
    """Options with a config-file form and one-line errors (exit code 2).

    Subclasses check their values in ``validate`` and raise ConfigError.
    """

    command_name = "eraft"

    def postOptions(self) -> None:
        try:
            self.apply_config_file()
            self.validate()
        except ConfigError as e:
            sys.stderr.write(f"{self.command_name}: error: {e}\n")
            raise SystemExit(2) from e

    def validate(self) -> None:
        """Check and convert the option values (raise ConfigError)."""

    def address_option(self, name: str) -> None:
        try:
            parse_address(self[name])
        except ValueError as e:
            raise ConfigError(f"--{name}: {e}") from e

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        argv = list(sys.argv[1:] if options is None else options)
        self.given = {a[2:].split("=", 1)[0] for a in argv if a.startswith("--")}
        try:
            super().parseOptions(options)
        except (usage.UsageError, ConfigError) as e:
            sys.stderr.write(f"{self.command_name}: error: {e}\n")
            raise SystemExit(2) from e

    def _known(self) -> set[str]:
        names = {p[0] for p in getattr(self, "optParameters", [])}
        names |= {f[0] for f in getattr(self, "optFlags", [])}
        return names - {"config"}

    def apply_config_file(self) -> None:
        """Fill options not given on the command line from ``--config``."""
        path = self.get("config")
        if not path:
            return
        for name, value in read_config_file(path, self._known()).items():
            if name in self.given:
                continue
            flag_names = {f[0] for f in getattr(self, "optFlags", [])}
            if name in flag_names:
                if value.lower() not in ("yes", "no", "true", "false", "1", "0"):
                    raise ConfigError(f"{path}: option {name!r} takes yes or no")
                self[name] = value.lower() in ("yes", "true", "1")
            else:
                self[name] = value

    def opt_config(self, path: str) -> None:
        """Read options from this file (command-line options win)."""
        self["config"] = path

    def int_option(self, name: str, lo: int, hi: int) -> int:
        try:
            n = int(self[name])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"--{name} must be an integer, got {self[name]!r}") from e
        if not lo <= n <= hi:
            raise ConfigError(f"--{name} must be between {lo} and {hi}, got {n}")
        return n


def client_limit_parameters() -> list[list[str | None]]:
    """The client-limit options of every RESP server (eraftkv, eraftkdb).

    The defaults are those of ``eraft_twisted.resp``: 64 MiB, 1 GiB, off.
    """
    return [
        [
            "client-output-buffer-limit",
            None,
            str(64 * 1024 * 1024),
            "Drop a client once this many bytes of its replies wait unread (0: no limit).",
        ],
        [
            "client-query-buffer-limit",
            None,
            str(1024 * 1024 * 1024),
            "Largest request (all its arguments together), in bytes.",
        ],
        [
            "client-idle-timeout",
            None,
            "0",
            "Close a client idle this many seconds (0: never; Redis's timeout).",
        ],
    ]


def validate_client_limits(options: BaseOptions) -> None:
    """Check and convert the options from :func:`client_limit_parameters`."""
    options["client-output-buffer-limit"] = options.int_option(
        "client-output-buffer-limit", 0, 2**40
    )
    options["client-query-buffer-limit"] = options.int_option(
        "client-query-buffer-limit", 1024, 2**40
    )
    options["client-idle-timeout"] = options.int_option("client-idle-timeout", 0, 2**31 - 1)


def raft_group_parameters(data: str, peers: str, timeout_help: str) -> list[list[str | None]]:
    """The options every Raft group member takes (eraftkv, eraftmeta)."""
    return [
        ["id", None, "0", "This node's index in --peers."],
        ["data", None, data, "Data directory (one LevelDB)."],
        ["peers", None, peers, "Comma-separated host:port of every member's peer port."],
        ["fsync", None, "always", "always: every acknowledged write is fsynced; never: unsafe."],
        ["tick-ms", None, "100", "Raft tick in milliseconds."],
        ["election-ticks", None, "10", "Election timeout in ticks (randomised up to 2x)."],
        ["timeout", None, "5", timeout_help],
        [
            "snapshot-entries",
            None,
            "10000",
            "Snapshot and compact the log every N entries (0: never).",
        ],
        [
            "snapshot-bytes",
            None,
            str(64 * 1024 * 1024),
            "Also snapshot once the log since the last snapshot exceeds N bytes (0: never).",
        ],
        [
            "group-token",
            None,
            "",
            "Derive the group's id at bootstrap from this text instead of --peers "
            "(the same on every member; for members that reach each other by "
            "different addresses).",
        ],
        ["config", None, None, "Read options from this file (command line wins)."],
    ]


class RaftGroupOptions(BaseOptions):
    """Validation of the options from :func:`raft_group_parameters`."""

    def validate(self) -> None:
        self["peers"] = parse_peers(self["peers"])
        self["id"] = self.int_option("id", 0, len(self["peers"]) - 1)
        if self["fsync"] not in ("always", "never"):
            raise ConfigError(f"--fsync must be 'always' or 'never', got {self['fsync']!r}")
        self["tick-ms"] = self.int_option("tick-ms", 1, 10_000)
        self["election-ticks"] = self.int_option("election-ticks", 3, 1000)
        self["timeout"] = self.int_option("timeout", 1, 3600)
        self["snapshot-entries"] = self.int_option("snapshot-entries", 0, 2**31)
        self["snapshot-bytes"] = self.int_option("snapshot-bytes", 0, 2**50)
        data = self["data"]
        if os.path.exists(data) and not os.path.isdir(data):
            raise ConfigError(f"--data {data} exists and is not a directory")
        check_not_locked(data)


def check_not_locked(data: str) -> None:
    """Fail early, with one line, if another process holds the data directory.

    LevelDB takes a POSIX lock on ``LOCK``; probing it here turns "IO error:
    lock" at start-up into a clear message before twistd daemonises.
    """
    import fcntl

    lock = os.path.join(data, "LOCK")
    if not os.path.exists(lock):
        return
    with open(lock, "a") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"data directory {data} is in use by another process") from None
        fcntl.lockf(f, fcntl.LOCK_UN)
