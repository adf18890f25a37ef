"""Redis's strict integers (``string2ll``), as every command reads them."""

from __future__ import annotations

import re

LLONG_MIN, LLONG_MAX = -(1 << 63), (1 << 63) - 1

_INT = re.compile(rb"(0|-?[1-9][0-9]*)\Z")


def parse_ll(raw: bytes) -> int | None:
    """``raw`` as a signed 64-bit integer in canonical form, else None."""
    if not raw or len(raw) > 20 or not _INT.match(raw):
        return None
    value = int(raw)
    return value if LLONG_MIN <= value <= LLONG_MAX else None
