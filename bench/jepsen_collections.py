"""The long fault campaign for sets, lists, transactions and blocking pops.

    .venv/bin/python bench/jepsen_collections.py --seconds 600
    .venv/bin/python bench/jepsen_collections.py --seconds 300 --workload list --faults kill,pause

A series of runs (``--run-seconds`` each, a fresh group every time)
cycling through the workloads (set, list, transfer, queue; or only
``--workload``) and nemesis mixes (network faults; process faults with
transfers and snapshots; membership changes; everything but membership,
overlapping).
Each run prints one summary line with its seed; the last line sums them
up. A failing run keeps its operations, nemesis log and node logs in a
directory it names (under ``--keep``). Exit status 1 if anything failed.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._cli import (  # noqa: E402
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
from eraft_twisted.testing.collection_campaign import (  # noqa: E402
    CollectionResult,
    run_collection_campaign,
)
from eraft_twisted.testing.collection_workload import names  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, 120, "campaign length", 60)
    p.add_argument("--workload", choices=names(), help="only this workload (default: cycle)")
    add_run_options(p)
    args = p.parse_args(argv)
    make_keep_dir(args)

    t0 = time.monotonic()
    seed = first_seed(args)
    workloads = [args.workload] if args.workload else list(names())

    def one(k: int, seconds: float) -> CollectionResult:
        faults_now, overlap = mix(args, k // len(workloads))
        return run_collection_campaign(
            workloads[k % len(workloads)],
            seconds=seconds,
            faults=faults_now,
            overlap=overlap,
            **run_args(args, seed + k),
        )

    results = run_series(args, one)
    runs, bad, ops, faults = totals(results)
    acked = sum(r.acknowledged for r in results)
    summary = counts_text(faults)
    print(
        f"jepsen collections: {runs} runs ({','.join(workloads)}), {args.seconds:.0f}s of "
        f"faults, {ops} operations, {acked} acknowledged writes, "
        f"{sum(faults.values())} faults ({summary}); "
        f"result: {'all ok' if not bad else f'{bad} runs FAILED'}; "
        f"wall {time.monotonic() - t0:.0f}s [seeds {seed}..{seed + runs - 1}]"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
