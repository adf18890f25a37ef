"""The long fault-injection campaign (``make jepsen SECONDS=600``).

    .venv/bin/python bench/jepsen.py --seconds 600        # linearizability campaign
    .venv/bin/python bench/jepsen.py --crash-loop 50      # crash durability loop
    .venv/bin/python bench/jepsen.py --seconds 600 --crash-loop 50

The campaign is a series of runs (``--run-seconds`` each, a fresh group
every time) cycling through nemesis mixes: network faults; process faults;
membership changes with process faults; everything but membership changes,
network and process faults overlapping. Each run prints one summary line;
the last line sums them up. A failing run keeps its history, nemesis log
and node logs in a directory it names (under ``--keep``). Exit status 1 if
anything failed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from eraft_twisted.testing.campaign import run_campaign  # noqa: E402
from eraft_twisted.testing.crashloop import crash_loop  # noqa: E402
from eraft_twisted.testing.nemesis import FAULTS, NETWORK_FAULTS  # noqa: E402

# Membership changes make a node reachable without the proxy (see
# Nemesis._member), so they run in mixes without network faults.
MIXES = [
    list(NETWORK_FAULTS),
    ["kill", "pause", "transfer", "snapshot"],
    ["member", "kill", "pause", "transfer"],
    [f for f in FAULTS if f != "member"],
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=0, help="campaign length (0: none)")
    p.add_argument("--run-seconds", type=float, default=120, help="length of one run")
    p.add_argument("--crash-loop", type=int, default=0, metavar="N", help="crash loop iterations")
    p.add_argument("--faults", help=f"comma-separated, from {','.join(FAULTS)} (default: cycle)")
    p.add_argument("--overlap", action="store_true", help="network and process faults overlap")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seed", type=int, help="seed of the first run (then +1 per run)")
    p.add_argument("--keep", help="directory for failure artifacts (default: temp dir)")
    args = p.parse_args(argv)
    if not args.seconds and not args.crash_loop:
        p.error("nothing to do: give --seconds and/or --crash-loop")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)

    failed = False
    t0 = time.monotonic()
    if args.seconds:
        seed = args.seed if args.seed is not None else random.randrange(2**32)
        ops = 0
        outcomes: Counter[str] = Counter()
        faults: Counter[str] = Counter()
        runs = bad = 0
        check_time = 0.0
        left = args.seconds
        while left > 5:
            mix = args.faults.split(",") if args.faults else MIXES[runs % len(MIXES)]
            r = run_campaign(
                seconds=min(args.run_seconds, left),
                faults=mix,
                # Network and process faults overlap when a mix has both.
                overlap=args.overlap or (not args.faults and runs % len(MIXES) == len(MIXES) - 1),
                seed=seed + runs,
                nodes=args.nodes,
                clients=args.clients,
                keep_dir=args.keep,
            )
            sys.stdout.flush()
            runs += 1
            ops += r.operations
            outcomes.update(r.outcomes)
            faults.update(r.faults)
            check_time += r.check.elapsed
            left -= r.seconds
            if not r.ok:
                bad += 1
        failed = bad > 0
        summary = ", ".join(f"{k} {v}" for k, v in sorted(faults.items()))
        print(
            f"jepsen campaign: {runs} runs, {args.seconds:.0f}s of faults, {ops} operations "
            f"({', '.join(f'{v} {k}' for k, v in sorted(outcomes.items()))}), "
            f"{sum(faults.values())} faults ({summary}); "
            f"result: {'all linearizable' if not bad else f'{bad} runs FAILED'}; "
            f"checker {check_time:.1f}s; wall {time.monotonic() - t0:.0f}s "
            f"[seeds {seed}..{seed + runs - 1}]"
        )
    if args.crash_loop:
        r2 = crash_loop(
            iterations=args.crash_loop, seed=args.seed, nodes=args.nodes, keep_dir=args.keep
        )
        failed = failed or not r2.ok
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
