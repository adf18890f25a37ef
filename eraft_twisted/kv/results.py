"""What applying an operation answers: results, refusals, and the changes
an operation makes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

OK = "OK"
"""Result of a write that replies ``+OK``."""


@dataclass(frozen=True)
class OpError:
    """An operation that applied as a refusal: the command layer replies
    ``-CODE message``. Results of apply are not stored; one that is sent to
    the follower that forwarded the write travels as :meth:`to_wire`."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"

    def to_wire(self) -> dict[str, str]:
        """``{"err": "CODE message"}``: how a forwarded result carries it
        (and what versions before :class:`OpError` sent)."""
        return {"err": str(self)}

    @classmethod
    def from_wire(cls, value: object) -> OpError | None:
        """The error a forwarded result carries, or None if it is no error."""
        if isinstance(value, dict) and len(value) == 1:
            text = value.get("err")
            if isinstance(text, str):
                code, _, message = text.partition(" ")
                return cls(code, message)
        return None


Result: TypeAlias = "bytes | str | int | float | OpError | None | list[Result]"
"""What applying an operation answers (``OK`` for ``+OK``; lists nest)."""

Writes: TypeAlias = list[tuple[bytes, bytes | None]]
"""``(key, record or None to delete)`` changes an operation makes."""

Applied: TypeAlias = tuple[Result, Writes]

MALFORMED = OpError("ERR", "malformed operation")
WRONGTYPE = OpError("WRONGTYPE", "Operation against a key holding the wrong kind of value")


class Refused(Exception):
    """Raised by an operation before it changed anything: it applies as
    the refusal ``err`` (the same on every replica)."""

    def __init__(self, err: OpError) -> None:
        super().__init__(str(err))
        self.err = err


class WrongType(Refused):
    """The key holds a value of another type."""

    def __init__(self) -> None:
        super().__init__(WRONGTYPE)
