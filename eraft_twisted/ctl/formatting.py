"""eraftctl's readable output: tables of configs, node and group states,
migrations, and one-line outcomes of the commands."""

from __future__ import annotations

from collections.abc import Sequence

from ..hashslot import SLOTS
from .groups import GroupResult
from .meta import JsonObject


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def format_config(cfg: JsonObject) -> str:
    """A config as text: summary, groups, slot ranges, migrations."""
    counts: dict[str, int] = {gid: 0 for gid in cfg["groups"]}
    nranges: dict[str, int] = {gid: 0 for gid in cfg["groups"]}
    owned = 0
    for lo, hi, gid in cfg["ranges"]:
        if gid:
            counts[str(gid)] = counts.get(str(gid), 0) + hi - lo + 1
            nranges[str(gid)] = nranges.get(str(gid), 0) + 1
            owned += hi - lo + 1
    ngroups = len(cfg["groups"])
    lines = [
        f"config {cfg['num']}: {ngroups} group{'' if ngroups == 1 else 's'}, "
        f"{owned} of {SLOTS} slots owned",
        "",
    ]
    if cfg["groups"]:
        rows = [
            (gid, counts[gid], nranges[gid], ",".join(servers))
            for gid, servers in sorted(cfg["groups"].items(), key=lambda kv: int(kv[0]))
        ]
        lines += [table(["GROUP", "SLOTS", "RANGES", "SERVERS"], rows), ""]
    rows2 = [
        (f"{lo}-{hi}" if lo != hi else str(lo), hi - lo + 1, gid if gid else "(unowned)")
        for lo, hi, gid in cfg["ranges"]
    ]
    lines += [table(["RANGE", "SLOTS", "GROUP"], rows2), ""]
    migrations = cfg.get("migrations") or []
    if not migrations:
        lines.append("migrations in flight: none")
    else:
        lines.append("migrations in flight:")
        for m in migrations:
            items = m.items() if isinstance(m, dict) else [("", m)]
            lines.append("  " + " ".join(f"{k}={v}" for k, v in items))
    return "\n".join(lines)


def format_status(status: JsonObject) -> str:
    """The meta node's raft state as text."""
    leader = status.get("leader")
    where = f"node {leader} at {status.get('leader_addr') or '?'}" if leader is not None else "none"
    cluster = f" of cluster {status['cluster_id']}" if status.get("cluster_id") else ""
    lines = [
        f"meta node {status['id']}{cluster}: {status['role']}, term {status['term']}, "
        f"leader {where}",
        f"commit index {status['commit_index']}, applied index {status['applied_index']}",
        "",
    ]
    rows = []
    for m in status.get("members", []):
        notes = []
        if m["id"] == leader:
            notes.append("leader")
        if m["id"] == status["id"]:
            notes.append("this node")
        if "lag" in m and m["id"] != status["id"]:
            notes.append(f"lag {m['lag']}")
        rows.append((m["id"], m.get("addr", ""), m["role"], ", ".join(notes)))
    lines.append(table(["ID", "ADDRESS", "ROLE", "NOTES"], rows))
    return "\n".join(lines)


def _who(node: int | None, addr: str) -> str:
    if node is None:
        return "none"
    return f"node {node} ({addr})" if addr else f"node {node}"


def format_leaders(groups: Sequence[GroupResult]) -> str:
    """One line per shard group: its leader, term and applied index (as
    told by the server that answered)."""
    rows = []
    for g in groups:
        gid = "-" if g["group"] is None else g["group"]
        if "error" in g:
            rows.append([gid, g["error"], "-", "-", "-"])
        else:
            leader = _who(g["leader"], g["leader_addr"])
            rows.append([gid, leader, g["term"], g["applied_index"], g["server"]])
    return table(["GROUP", "LEADER", "TERM", "APPLIED", "ASKED"], rows)


def format_members(info: GroupResult) -> str:
    """The members of a group as seen by one of its nodes."""
    rows = []
    for m in info["members"]:
        notes = []
        if m.get("id") == info["leader"]:
            notes.append("leader")
        if m.get("self") == "yes":
            notes.append("answered")
        if "lag" in m and m.get("self") != "yes":
            notes.append(f"lag {m['lag']}")
        rows.append((m.get("id", "?"), m.get("addr", ""), m.get("role", "?"), ", ".join(notes)))
    return table(["ID", "ADDRESS", "ROLE", "NOTES"], rows)


def members_line(result: GroupResult) -> str:
    """A group's voters and learners after add-node or remove-node."""
    if "voters" not in result:
        return f"(the change is not visible on {result['server']} yet)"
    voters = ",".join(map(str, result["voters"])) or "none"
    learners = ",".join(map(str, result["learners"])) or "none"
    return f"members now: voters {voters}; learners {learners}"


def format_transfer(label: str, r: GroupResult) -> str:
    """The outcome of transfer-leader as one line."""
    old, new = r["previous_leader"], r["leader"]
    if new is None:
        return (
            f"{label}: leadership transfer done ({r['reply']}); "
            f"{r['server']} does not know the new leader yet"
        )
    if new == old:
        return f"{label}: {_who(new, r['leader_addr'])} already leads, term {r['term']}"
    src = f" from node {old}" if old is not None else ""
    return f"{label}: leadership moved{src} to {_who(new, r['leader_addr'])}, term {r['term']}"


def change_summary(what: str, result: JsonObject) -> str:
    """The first line after join, leave, move or rebalance."""
    num = result["config"]["num"]
    if not result.get("changed"):
        return f"no change: config {num} already {what}"
    moved = result.get("moved", 0)
    return f"config {num}: {what}; {moved} slot{'' if moved == 1 else 's'} changed owner"


def format_migrations(report: JsonObject) -> str:
    """A table of every group's progress towards the latest config."""
    rows = []
    for g in report["groups"]:
        if "error" in g:
            rows.append([g["group"], "?", g["error"], "", ""])
            continue
        copying = "; ".join(
            f"{c['slots']}: {c.get('keys', 0)} keys, {c.get('bytes', 0)} B"
            + (" (done)" if c.get("done") else "")
            for c in g["copying"]
        )
        rows.append(
            [g["group"], g["config"], g["incoming"] or "-", g["release_pending"] or "-",
             copying or "-"]
        )  # fmt: skip
    head = f"latest config {report['num']}; groups still moving data: {report['in_flight']}"
    return head + "\n\n" + table(["GROUP", "APPLIED", "INCOMING", "TO RELEASE", "COPYING"], rows)


def format_size(n: float) -> str:
    """Bytes in decimal units: ``999 B``, ``1.2 kB``, ``3.4 MB``."""
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"
