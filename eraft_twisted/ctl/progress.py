"""Waiting for a config change's data to move, with a progress bar: slot
ranges done, keys and bytes copied."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from twisted.internet.interfaces import IReactorTime

from ..hashslot import SLOTS
from .clock import global_reactor, sleep
from .formatting import format_size
from .meta import JsonObject, MetaClient

MovedRange = tuple[int, int, int, int]
"""``(lo, hi, from_group, to_group)``: slots whose owner changes."""


def slot_owners(cfg: JsonObject) -> list[int]:
    """The owning group of every slot in a config (0: unowned)."""
    owners = [0] * SLOTS
    for lo, hi, gid in cfg["ranges"]:
        owners[lo : hi + 1] = [int(gid or 0)] * (hi - lo + 1)
    return owners


def changed_ranges(old: JsonObject, new: JsonObject) -> list[MovedRange]:
    """``(lo, hi, from_group, to_group)`` runs of slots whose owner differs
    between two configs."""
    a, b = slot_owners(old), slot_owners(new)
    out: list[MovedRange] = []
    for s in range(SLOTS):
        if a[s] == b[s]:
            continue
        if out and out[-1][1] == s - 1 and out[-1][2:] == (a[s], b[s]):
            out[-1] = (out[-1][0], s, a[s], b[s])
        else:
            out.append((s, s, a[s], b[s]))
    return out


def _slot_runs(text: str) -> list[tuple[int, int]]:
    """``lo-hi`` spans of an INFO ``shard_incoming`` value (``0-99:g1@3,...``)."""
    spans = []
    for item in text.split(","):
        span = item.split(":", 1)[0].strip()
        if not span:
            continue
        lo, _, hi = span.partition("-")
        try:
            spans.append((int(lo), int(hi or lo)))
        except ValueError:
            continue
    return spans


def ranges_done(moved: Sequence[MovedRange], report: JsonObject, num: int) -> int:
    """How many of ``moved`` are done according to a ``GET /migrations``
    report: the new owner has applied config ``num`` and no longer lists
    any of the range as incoming. Slots given up to nobody, or to a group
    no longer in the config, have nothing to wait for."""
    groups = {int(g["group"]): g for g in report.get("groups", [])}
    done = 0
    for lo, hi, _src, dst in moved:
        g = groups.get(dst)
        if dst == 0 or g is None:
            done += 1
            continue
        if "error" in g or g.get("config", -1) < num:
            continue
        if any(a <= hi and lo <= b for a, b in _slot_runs(g.get("incoming") or "")):
            continue
        done += 1
    return done


def progress_bar(done: int, total: int, keys: int, size: int, width: int = 20) -> str:
    """``[#######.............] 3/8 ranges  12,345 keys  1.2 MB copied``."""
    filled = width if done >= total else int(width * done / total)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
        f"range{'' if total == 1 else 's'}  {keys:,} keys  {format_size(size)} copied"
    )


async def wait_for_data(
    client: MetaClient,
    num: int,
    out: TextIO,
    show: bool,
    clock: IReactorTime | None = None,
    interval: float = 0.5,
) -> None:
    """Poll the groups until every one applied config ``num`` and moved its
    data. With ``show``, draw a progress bar: how many of the slot ranges
    that change owner between configs num-1 and num are done, and the keys
    and bytes copied (the target's leader keeps a finished range's counts
    until it applies a newer config). It is redrawn on every poll when
    ``out`` is a terminal, else printed once at the end."""
    clock = clock if clock is not None else global_reactor()
    moved: list[MovedRange] = []
    if num > 0:
        old = await client.request("GET", f"/config/{num - 1}")
        new = await client.request("GET", f"/config/{num}")
        moved = changed_ranges(old, new)
    tty = show and bool(getattr(out, "isatty", lambda: False)())
    drawn = 0
    copied: dict[str, tuple[int, int]] = {}
    while True:
        report = await client.request("GET", "/migrations")
        unreachable = [g["group"] for g in report["groups"] if "error" in g]
        if unreachable:
            # Nothing to watch there (e.g. a group registered by hand whose
            # servers are not running yet): say so rather than hang.
            if drawn:
                out.write("\n")
                out.flush()
            sys.stderr.write(
                f"eraftctl: not waiting for the data to move: group(s) "
                f"{', '.join(map(str, unreachable))} unreachable\n"
            )
            return
        behind = [g for g in report["groups"] if g.get("config", -1) < num]
        for g in report["groups"]:
            for c in g.get("copying", []):
                if c.get("config", num) == num:
                    copied[f"{g['group']}:{c['slots']}"] = (c.get("keys", 0), c.get("bytes", 0))
        keys = sum(k for k, _ in copied.values())
        size = sum(b for _, b in copied.values())
        bar = "moving data: " + progress_bar(
            ranges_done(moved, report, num), len(moved), keys, size
        )
        finished = not report["in_flight"] and not behind
        if tty:
            out.write("\r" + bar.ljust(drawn) + ("\n" if finished else ""))
            out.flush()
            drawn = len(bar)
        elif show and finished:
            out.write(bar + "\n")
        if finished:
            return
        await sleep(clock, interval)
