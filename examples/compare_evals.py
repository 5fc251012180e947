"""Print two or more `funrl eval --output` JSON files side by side.

    python examples/compare_evals.py BEFORE.json AFTER.json [MORE.json ...]

A difference in error rate is significant at ~95% only when the intervals do not overlap
(a conservative reading of the bootstrap intervals each file carries).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table


def rows(m: dict) -> dict[str, str]:
    o = m["overall"]
    lo, hi = (o.get("ci95") or [None, None])[:2]
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
    out = {"error rate (95% CI)": f"{o['error_rate']:.4f}{ci}"}
    for lang, b in sorted(m.get("per_language", {}).items()):
        out[f"  {lang} ({b['metric']})"] = f"{b['error_rate']:.4f}"
    out["hallucination rate (noise clips)"] = f"{m['hallucination_rate']:.3f}"
    out["keyword precision"] = f"{m['keywords']['precision']:.3f}"
    out["keyword recall"] = f"{m['keywords']['recall']:.3f}"
    out["language mismatch rate"] = f"{m['language_mismatch_rate']:.3f}"
    out["utterances"] = str(m["utterances"])
    return out


def main(paths: list[str]) -> int:
    if len(paths) < 2:
        print(__doc__)
        return 2
    evals = [rows(json.loads(Path(p).read_text())) for p in paths]
    t = Table(title="funrl eval")
    t.add_column("metric")
    for p in paths:
        t.add_column(Path(p).stem)
    for key in evals[0]:
        t.add_row(key, *[e.get(key, "") for e in evals])
    Console().print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
