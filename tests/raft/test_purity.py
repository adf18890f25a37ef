"""The Raft core stays pure: no Twisted, sockets, files, clock or global random."""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial import unittest

import eraft_twisted.raft

RAFT_DIR = Path(eraft_twisted.raft.__file__).parent
FORBIDDEN_MODULES = {
    "twisted", "socket", "os", "io", "time", "datetime", "threading", "asyncio",
    "select", "selectors", "subprocess", "pathlib", "shutil", "tempfile", "secrets", "uuid",
    "multiprocessing", "signal",
}  # fmt: skip
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval"}


class PurityTests(unittest.TestCase):
    def sources(self) -> list[tuple[str, ast.AST]]:
        return [(p.name, ast.parse(p.read_text(), str(p))) for p in sorted(RAFT_DIR.glob("*.py"))]

    def test_sources_found(self) -> None:
        names = {n for n, _ in self.sources()}
        self.assertTrue({"core.py", "rawnode.py", "log.py"} <= names)

    def test_no_forbidden_imports(self) -> None:
        for name, tree in self.sources():
            for node in ast.walk(tree):
                mods: list[str] = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    mods = [node.module]
                for mod in mods:
                    self.assertNotIn(mod.split(".")[0], FORBIDDEN_MODULES, f"{name} imports {mod}")

    def test_randomness_only_through_an_injected_random(self) -> None:
        for name, tree in self.sources():
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "random":
                    self.fail(f"{name}: from random import ...")
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "random"
                    and node.attr != "Random"
                ):
                    self.fail(f"{name}:{node.lineno} uses random.{node.attr}")
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "Random"
                ):
                    self.fail(f"{name}:{node.lineno} creates its own Random")

    def test_no_io_builtins(self) -> None:
        for name, tree in self.sources():
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    self.assertNotIn(node.func.id, FORBIDDEN_CALLS, f"{name}:{node.lineno}")
