"""Write every artefact of a run's profile from ``spans.jsonl``: trace, report JSON, PNGs."""

from __future__ import annotations

import json
from pathlib import Path

from funrl.profiling.records import load_records, profile_dir
from funrl.profiling.report import build_report
from funrl.profiling.trace import write_trace


def write_outputs(run_dir: str | Path, plots: bool = True) -> dict:
    """Write ``trace.json``, ``report.json`` (and ``phases_pie.png``, ``phases_per_step.png``)
    under ``{run_dir}/profile/``; return the report dict with ``files`` listing what was written."""
    out = profile_dir(run_dir)
    records = load_records(run_dir)
    report = build_report(records)
    files = [write_trace(records, out / "trace.json")]
    if plots and report["steps"]:
        from funrl.profiling.plots import plot_per_step, plot_pie

        files += [plot_pie(report, out / "phases_pie.png"), plot_per_step(report, out / "phases_per_step.png")]
    (out / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False), encoding="utf-8")
    files.append(out / "report.json")
    report["files"] = [str(f) for f in files]
    return report
