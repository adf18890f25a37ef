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

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._cli import (  # noqa: E402
    add_counts,
    add_run_options,
    counts_text,
    first_seed,
    make_keep_dir,
    mix,
    parser,
    run_args,
    run_series,
    totals,
)
from eraft_twisted.testing.campaign import CampaignResult, run_campaign  # noqa: E402
from eraft_twisted.testing.crashloop import crash_loop  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, 0, "campaign length (0: none)", 120)
    p.add_argument("--crash-loop", type=int, default=0, metavar="N", help="crash loop iterations")
    add_run_options(p)
    args = p.parse_args(argv)
    if not args.seconds and not args.crash_loop:
        p.error("nothing to do: give --seconds and/or --crash-loop")
    make_keep_dir(args)

    failed = False
    t0 = time.monotonic()
    if args.seconds:
        seed = first_seed(args)

        def one(k: int, seconds: float) -> CampaignResult:
            faults_now, overlap = mix(args, k)
            return run_campaign(
                seconds=seconds,
                faults=faults_now,
                overlap=overlap,
                **run_args(args, seed + k),
            )

        results = run_series(args, one)
        runs, bad, ops, faults = totals(results)
        outcomes = add_counts(r.outcomes for r in results)
        check_time = sum(r.check.elapsed for r in results)
        failed = bad > 0
        summary = counts_text(faults)
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
