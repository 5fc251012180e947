"""Evaluation during training (``train.eval_every``): the rollout engine decodes ``data.eval_manifest``
greedily with the weights it was just synced, and the figures come from the same code as
``funrl eval`` (:func:`funrl.eval.metrics.compute_metrics`); nothing reloads a model.

Metrics (``eval/`` in ``metrics.jsonl`` and TensorBoard): ``error_rate`` (mixed error rate over
speech clips), ``hallucination_rate`` (noise clips), ``keyword_recall``, ``language_mismatch_rate``,
``utterances``. ``checkpoint.best_metric`` names one of the first four; the model is exported to
``RUN_DIR/best`` whenever it improves (lower is better, keyword recall higher), with ``best.json``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

from funrl.errors import ConfigError

# metric -> True when higher is better
BEST_METRICS = {"eval/error_rate": False, "eval/hallucination_rate": False, "eval/keyword_recall": True,
                "eval/language_mismatch_rate": False}


def eval_utterances(cfg) -> list:
    """The first ``train.eval_max_utterances`` rows of ``data.eval_manifest`` (all with 0), every row
    and its audio checked like the training manifest; [] when ``train.eval_every`` is 0."""
    from funrl.data.context import max_clip_seconds, too_long, too_long_message
    from funrl.data.manifest import load_manifest

    t = cfg.train
    if not t.eval_every:
        return []
    if not cfg.data.eval_manifest:
        raise ConfigError(f"train.eval_every={t.eval_every} needs data.eval_manifest=PATH (the held-out clips to decode)")
    utts = load_manifest(cfg.data.eval_manifest, check_audio=True)
    utts = utts[: t.eval_max_utterances] if t.eval_max_utterances else utts
    limit = max_clip_seconds(cfg.model.path, cfg.rollout.max_new_tokens) if cfg.model.path else None
    long = too_long(utts, limit)
    if long:
        raise ConfigError(too_long_message(cfg.data.eval_manifest, long, limit, cfg.model.path,
                                           "leave them out of the eval manifest"))
    return utts


def eval_metrics(hyps: list[str], rows: list[dict]) -> dict[str, float]:
    """``eval/*`` figures of ``hyps[i]`` transcribing ``rows[i]``, by ``funrl eval``'s code."""
    from funrl.eval.metrics import compute_metrics

    m = compute_metrics(hyps, rows, n_boot=0)
    return {
        "eval/error_rate": m["overall"]["error_rate"],
        "eval/hallucination_rate": m["hallucination_rate"],
        "eval/keyword_recall": m["keywords"]["recall"],
        "eval/language_mismatch_rate": m["language_mismatch_rate"],
        "eval/utterances": float(len(rows)),
    }


def improves(metric: str, value: float, best: float | None) -> bool:
    """Whether ``value`` beats ``best`` for ``metric`` (a NaN never does; the first finite one does)."""
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if BEST_METRICS[metric] else value < best


def replace_folder(tmp: Path, dest: Path) -> None:
    """Put the complete folder ``tmp`` at ``dest``: the old one is moved aside first and removed after,
    so a kill leaves either the old or the new folder whole (and at most a ``.old`` to sweep)."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def write_best(folder: Path, step: int, metric: str, value: float) -> None:
    (folder / "best.json").write_text(json.dumps({"step": step, "metric": metric, "value": value}) + "\n")
