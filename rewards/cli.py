"""``funrl rewards score``: score hypotheses offline with the configured reward components.

Each line of the input JSONL is one object: ``hypothesis`` plus the manifest fields of its sample
(``text`` = reference, ``language``, ``keywords``, ``hotwords``, …; see
:mod:`funrl.rewards.protocol`); an optional ``group_id`` is passed on as ``group_ids``. Each output
line holds ``id`` (or the input line number), ``hypothesis``, every component by name and ``total``.
A summary table (per component: weight, applicable count, mean, std, min, max) is printed. Errors
name the input file and line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BATCH = 1024


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rewards", help="score hypotheses with the reward components")
    rsub = p.add_subparsers(dest="rewards_command", metavar="ACTION")
    rsub.required = True
    score = rsub.add_parser("score", help="score a JSONL of hypotheses; print a summary table")
    score.add_argument("--config", help="YAML config (default: the built-in defaults)")
    score.add_argument("--input", required=True, help="JSONL: one {hypothesis, text, language, keywords, …} per line")
    score.add_argument("--output", help="JSONL to write per-row components and total")
    score.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    score.set_defaults(func=_score)


class InputError(ValueError):
    pass


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """``(line number, row)`` for each non-blank line (:func:`funrl.data.jsonl.read_jsonl`); raises
    InputError naming ``file:line``."""
    from funrl.data.jsonl import JsonlError, read_jsonl

    rows = []
    try:
        lines = list(read_jsonl(path, what="input"))
    except JsonlError as e:
        raise InputError(str(e)) from None
    for no, row in lines:
        for key in ("hypothesis", "text"):
            if not isinstance(row.get(key), str):
                what = "missing" if key not in row else f"{type(row[key]).__name__}, not a string"
                raise InputError(f"{path}:{no}: key '{key}' is {what}; each row needs 'hypothesis' and 'text' strings")
        if "group_id" in row and (isinstance(row["group_id"], bool) or not isinstance(row["group_id"], int)):
            raise InputError(f"{path}:{no}: 'group_id' must be an integer, got {row['group_id']!r}")
        rows.append((no, row))
    if not rows:
        raise InputError(f"{path}: no rows; expected one JSON object per line")
    return rows


def _score_rows(combiner: Any, path: Path, rows: list[tuple[int, dict]]) -> tuple[list[float], dict[str, list]]:
    from funrl.rewards.protocol import RewardError

    total: list[float] = []
    comps: dict[str, list] = {name: [] for name in combiner.names}
    for b in range(0, len(rows), BATCH):
        chunk = rows[b : b + BATCH]
        samples = [{k: v for k, v in r.items() if k != "hypothesis"} for _, r in chunk]
        try:
            res = combiner(
                [r["hypothesis"] for _, r in chunk],
                references=[r["text"] for _, r in chunk],
                samples=samples,
                group_ids=[int(r.get("group_id", b + i)) for i, (_, r) in enumerate(chunk)],
                step=0,
            )
        except RewardError as e:
            where = f"{path}:{chunk[e.index][0]}: " if e.index is not None else f"{path}: "
            raise RewardError(where + str(e), e.component, e.index) from e
        total += res.total
        for name, vals in res.components.items():
            comps[name] += vals
    return total, comps


def _summary(combiner: Any, total: list[float], comps: dict[str, list]) -> None:
    """The table of :func:`funrl.rewards.combiner.reward_stats` (with min and max) per component and total."""
    import math

    from rich.console import Console
    from rich.table import Table

    from funrl.rewards.combiner import reward_stats

    stats = reward_stats(comps, total, extremes=True)
    table = Table(title=f"rewards over {len(total)} rows")
    for col in ("component", "weight", "applicable", "mean", "std", "min", "max"):
        table.add_column(col, justify="left" if col == "component" else "right")
    weights = {c.name: c.weight for c in combiner.components}
    for name in [*comps, "total"]:
        n = len(total)
        applicable = round(stats[f"reward/{name}_applicable"] * n) if name in comps else n
        w = f"{weights[name]:g}" if name in weights else ""
        cells = [stats[f"reward/{name}_{k}"] for k in ("mean", "std", "min", "max")]
        cells = ["-" if math.isnan(v) else f"{v:.4f}" for v in cells]
        table.add_row(name, w, f"{applicable}/{n}", *cells)
    Console(width=100).print(table)


def _score(args: argparse.Namespace) -> int:
    from funrl.config import load_config
    from funrl.rewards.combiner import RewardCombiner
    from funrl.rewards.protocol import RewardError

    cfg = load_config(args.config, list(args.overrides))
    path = Path(args.input)
    try:
        combiner = RewardCombiner.from_config(cfg.rewards)
        rows = read_rows(path)
        total, comps = _score_rows(combiner, path, rows)
    except (InputError, RewardError) as e:
        print(f"funrl: {e}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            for k, (no, row) in enumerate(rows):
                out = {"id": row.get("id", f"line {no}"), "hypothesis": row["hypothesis"]}
                out.update({name: vals[k] for name, vals in comps.items()})
                out["total"] = total[k]
                f.write(json.dumps(out, ensure_ascii=False) + "\n")
    _summary(combiner, total, comps)
    return 0
