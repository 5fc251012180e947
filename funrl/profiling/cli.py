"""``funrl profile RUN_DIR``: print the time breakdown and write the trace and pictures."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="time breakdown of a run: table, trace.json, pie chart, per-step bars")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (holds profile/spans.jsonl)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    p.set_defaults(func=_profile)


def _profile(args: argparse.Namespace) -> int:
    from funrl.profiling.outputs import write_outputs
    from funrl.profiling.report import print_report

    try:
        report = write_outputs(args.run_dir, plots=not args.no_plots)
    except (FileNotFoundError, ValueError) as e:  # no data, or a damaged spans.jsonl
        print(f"funrl profile: {e}", file=sys.stderr)
        return 1
    if not report["steps"]:
        print(f"funrl profile: {args.run_dir}/profile/spans.jsonl has no finished step yet", file=sys.stderr)
        return 1
    print_report(report)
    for f in report["files"]:
        print(f"wrote {f}")
    return 0
