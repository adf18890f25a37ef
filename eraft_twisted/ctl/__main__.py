"""``python -m eraft_twisted.ctl``: the same as ``eraftctl``."""

from __future__ import annotations

from .main import main

main()
