"""The ``eraftctl`` console entry point."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from twisted.internet import defer, task

from .args import parse_args
from .commands import run
from .errors import CtlError


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, carry the command out on the reactor, exit
    with its code (1 with one line on stderr on failure, 2 on bad usage)."""
    args = parse_args(argv)

    async def _main() -> None:
        try:
            code = await run(args)
        except CtlError as e:
            sys.stderr.write(f"eraftctl: error: {e}\n")
            code = 1
        if code:
            raise SystemExit(code)

    task.react(lambda reactor: defer.ensureDeferred(_main()))


if __name__ == "__main__":
    main()
