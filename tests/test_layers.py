"""The layer rules of DESIGN.md, checked from every module's imports.

``LAYERS`` is DESIGN.md's table, top to bottom: a package imports only
packages below it (and itself, and the package root). ``FORBIDDEN`` holds
the table's "must not" column where it names an import. Change the table
and this test together.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial import unittest

import eraft_twisted

ROOT = Path(eraft_twisted.__file__).parent
PLUGINS = ROOT.parent / "twisted" / "plugins"

LAYERS: list[set[str]] = [
    {"plugins", "tap"},
    {"ctl", "devcluster"},
    {"kdb"},
    {"server"},
    {"meta"},
    {"shard"},
    {"kv"},
    {"node"},
    {"rpc"},
    {"resp"},
    {"storage"},
    {"raft"},
    {"net", "hashslot"},
]
"""DESIGN.md's layer table; ``devcluster`` (a development tool) sits with ``ctl``."""

FORBIDDEN: dict[str, set[str]] = {
    "ctl": {"storage", "raft"},
    "kdb": {"kv", "server"},
    "shard": {"resp"},
    "kv": {"resp", "time", "datetime"},
    "raft": {"twisted", "time", "datetime", "socket", "threading", "os"},
    "net": {"twisted"},
    "hashslot": {"twisted"},
}
"""Imports a place must not make, besides the order of the table."""

TESTING = "testing"
"""May import anything; nothing outside tests imports it."""


def _place(path: Path) -> str:
    if path.is_relative_to(PLUGINS):
        return "plugins"
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else ""


def _package(path: Path) -> list[str]:
    if path.is_relative_to(PLUGINS):
        return ["twisted", "plugins"]
    return ["eraft_twisted", *path.relative_to(ROOT).parts[:-1]]


def _imports(
    path: Path, package: list[str] | None = None, text: str | None = None
) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every import in ``path`` (whose source
    is ``text`` if given, in ``package``)."""
    tree = ast.parse(path.read_text() if text is None else text, str(path))
    if package is None:
        package = _package(path)
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if not node.module:
                    out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
                    continue
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
    return out


def _target(module: str) -> str | None:
    """The place a module belongs to: a project place, or a top-level
    outside module name (for FORBIDDEN); None for the package root."""
    parts = module.split(".")
    if parts[0] != "eraft_twisted":
        return parts[0]
    if len(parts) == 1 or not ((ROOT / parts[1]).is_dir() or (ROOT / f"{parts[1]}.py").is_file()):
        return None  # the package root (``from .. import __version__``)
    return parts[1]


def _sources() -> list[Path]:
    return sorted(ROOT.rglob("*.py")) + sorted(PLUGINS.glob("*.py"))


def violations() -> list[str]:
    """Every import that breaks a rule, as ``file:line: message``."""
    out: list[str] = []
    for path in _sources():
        where = path.relative_to(ROOT.parent) if path.is_relative_to(ROOT.parent) else path
        out += _judge(str(where), _place(path), _imports(path))
    return out


def _judge(where: str, place: str, imports: list[tuple[int, str]]) -> list[str]:
    """The broken rules among ``imports`` of a module in ``place``."""
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    out: list[str] = []
    if place and place not in rank and place != TESTING:
        return [f"{where}: {place!r} is not in DESIGN.md's layer table"]
    for line, module in imports:
        target = _target(module)
        if target is None or target == place:
            continue
        is_project = module.startswith("eraft_twisted.")
        if target in FORBIDDEN.get(place, set()):
            out.append(f"{where}:{line}: {place} must not import {module}")
        if not is_project or place in ("", TESTING):
            continue
        if target == TESTING:
            out.append(f"{where}:{line}: production code imports {module}")
        elif target not in rank:
            out.append(f"{where}:{line}: {module} is not in DESIGN.md's layer table")
        elif rank[target] <= rank[place]:
            out.append(f"{where}:{line}: {place} imports {module}, which is not below it")
    return out


class LayerTests(unittest.TestCase):
    def test_every_import_follows_the_layer_table(self) -> None:
        self.assertEqual(violations(), [])

    def test_the_check_sees_imports(self) -> None:
        """The scan finds the imports it judges (a check that saw none would pass)."""
        found = {m for p in _sources() for _, m in _imports(p)}
        self.assertIn("eraft_twisted.kv.statemachine", found)
        self.assertIn("eraft_twisted.raft.types", found)
        self.assertIn("eraft_twisted.server.kvserver", found)
        places = {_place(p) for p in _sources()}
        self.assertTrue({"plugins", "tap", "server", "shard", "kv", "raft", "net"} <= places)

    def test_a_broken_rule_is_reported(self) -> None:
        """An upward import in a scratch module is caught."""
        probe = ROOT / "kv" / "_layer_probe.py"  # judged, never written
        text = "from ..server import kvserver\nfrom ..resp import encoder\nimport time\n"
        found = _judge("probe", "kv", _imports(probe, ["eraft_twisted", "kv"], text))
        self.assertEqual(len(found), 3, found)
