"""sorted-set commands, declared as parse -> operation -> reply (see :mod:`.datacmd`)."""

from __future__ import annotations

from ..resp.commands import CommandTable
from .datacmd import DataCommands


class SortedSetCommands:
    """Registers the sorted-set commands on a :class:`DataCommands`."""

    def __init__(self, data: DataCommands) -> None:
        self.data = data

    def register(self, table: CommandTable) -> None:
        pass
