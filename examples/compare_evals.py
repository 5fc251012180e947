"""Print two or more `funrl eval --output` JSON files side by side.

    python examples/compare_evals.py BEFORE.json AFTER.json [MORE.json ...]

The row "error rate − first's (paired 95% CI)" is the difference of each evaluation's error rate
from the first one's, on the same utterances, with a paired bootstrap interval
(funrl.eval.metrics.paired_bootstrap over the files' ``per_utterance`` error counts): the
difference is significant at ~95% when that interval excludes 0.
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


def paired_row(first: dict, other: dict, name: str) -> str:
    """``other``'s error rate minus ``first``'s, utterance by utterance, with its paired interval."""
    import numpy as np

    from funrl.eval.metrics import paired_bootstrap

    if "per_utterance" not in first or "per_utterance" not in other:
        return "n/a (rerun funrl eval: no per_utterance counts)"
    a = {u: (e, n) for u, e, n in first["per_utterance"]}
    b = {u: (e, n) for u, e, n in other["per_utterance"]}
    if a.keys() != b.keys() or any(a[u][1] != b[u][1] for u in a):
        raise SystemExit(f"compare_evals: {name} was not evaluated on the first file's utterances; "
                         "compare evaluations of one manifest")
    ids = sorted(a)
    r = paired_bootstrap(np.array([a[u][0] for u in ids], float), np.array([b[u][0] for u in ids], float),
                         np.array([a[u][1] for u in ids], float))
    return f"{r['difference']:+.4f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}]"


def main(paths: list[str]) -> int:
    if len(paths) < 2:
        print(__doc__)
        return 2
    raw = [json.loads(Path(p).read_text()) for p in paths]
    evals = [rows(m) for m in raw]
    evals[0]["error rate − first's (paired 95% CI)"] = "—"
    for p, m, e in zip(paths[1:], raw[1:], evals[1:]):
        e["error rate − first's (paired 95% CI)"] = paired_row(raw[0], m, p)
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
