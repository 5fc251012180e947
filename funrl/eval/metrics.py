"""Evaluation figures from hypotheses: the rewards' text rules, aggregated over a corpus.

One definition of WER in the project: error counts come from :func:`funrl.rewards.text.error_counts`
(CJK per character, Latin per word), keyword matching from :func:`~funrl.rewards.text.match_keywords`,
the language check from the ``language`` reward (:class:`funrl.rewards.language.Language`).

- ``error_rate``: corpus error rate over speech utterances = total errors / total reference units
  (``wer`` for en, ``cer`` for zh, ``mer`` for mixed and overall), with a bootstrap 95% interval
  (utterances resampled with replacement, ``n_boot`` times, percentiles 2.5 / 97.5).
- ``hallucination_rate``: share of noise-only clips (``noise`` true or empty ``text``) whose output
  is not empty (after stripping whitespace).
- ``keywords``: micro precision / recall over speech utterances with ``keywords``; the candidate
  terms are keywords + hotwords (distractors), as in the keyword reward: TP in hypothesis and
  reference, FP in hypothesis only, FN in reference only.
- ``language_mismatch_rate``: share of speech utterances where the language reward penalises the
  output (an empty output is not judged a mismatch, as in the reward).
- ``per_utterance``: ``[id, errors, units]`` of every speech utterance, so that two evaluations of
  the same manifest can be compared pair by pair (:func:`paired_bootstrap`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from funrl.rewards.language import Language
from funrl.rewards.text import ErrorCounts, error_counts, match_keywords

METRIC_BY_LANGUAGE = {"en": "wer", "zh": "cer", "mixed": "mer"}


def _field(u: Any, name: str, default=None):
    return u.get(name, default) if isinstance(u, dict) else getattr(u, name, default)


def is_noise(u: Any) -> bool:
    return bool(_field(u, "noise")) or not (_field(u, "text") or "").strip()


def bootstrap_ci(errors: np.ndarray, units: np.ndarray, n_boot: int, seed: int) -> list[float]:
    """95% percentile interval of ``sum(errors)/sum(units)`` over utterances resampled with replacement."""
    if len(errors) == 0 or n_boot <= 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(errors), size=(n_boot, len(errors)))  # [n_boot, m]
    rates = errors[idx].sum(1) / np.maximum(units[idx].sum(1), 1)  # [n_boot]
    lo, hi = np.percentile(rates, [2.5, 97.5])
    return [float(lo), float(hi)]


def paired_bootstrap(errors_a: np.ndarray, errors_b: np.ndarray, units: np.ndarray, n_boot: int = 1000,
                     seed: int = 0) -> dict:
    """Error rate of B minus that of A on the same utterances, with a 95% percentile interval from
    resampling utterances with replacement (the same resample for both systems, so what the two
    share, such as which utterances are hard, cancels). ``errors_* [m]``, ``units [m]``.

    >>> r = paired_bootstrap(np.array([2., 1.]), np.array([1., 0.]), np.array([4., 4.]), n_boot=50)
    >>> r["difference"], r["ci95"]
    (-0.25, [-0.25, -0.25])
    """
    if not (len(errors_a) == len(errors_b) == len(units)) or len(units) == 0:
        raise ValueError(f"paired_bootstrap: {len(errors_a)}, {len(errors_b)} and {len(units)} utterances")
    diff = float((errors_b.sum() - errors_a.sum()) / max(units.sum(), 1))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(units), size=(n_boot, len(units)))  # [n_boot, m]
    n = np.maximum(units[idx].sum(1), 1)  # [n_boot]
    deltas = (errors_b[idx].sum(1) - errors_a[idx].sum(1)) / n  # [n_boot]
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return {"difference": diff, "ci95": [float(lo), float(hi)], "utterances": len(units), "n_boot": n_boot}


def _rate_block(counts: list[ErrorCounts], metric: str, n_boot: int, seed: int) -> dict:
    total = sum(counts, ErrorCounts())
    errs = np.array([c.errors for c in counts], dtype=np.float64)
    units = np.array([c.n for c in counts], dtype=np.float64)
    return {
        "metric": metric,
        "utterances": len(counts),
        "units": total.n,
        "substitutions": total.substitutions,
        "deletions": total.deletions,
        "insertions": total.insertions,
        "error_rate": total.errors / total.n if total.n else float("nan"),
        "ci95": bootstrap_ci(errs, units, n_boot, seed),
    }


def _keywords(hyps: Sequence[str], utts: Sequence[Any]) -> dict:
    tp = fp = fn = 0
    for h, u in zip(hyps, utts):
        kws = list(_field(u, "keywords") or [])
        if not kws:
            continue
        terms = list(dict.fromkeys([*kws, *(_field(u, "hotwords") or [])]))
        in_ref, in_hyp = set(match_keywords(_field(u, "text"), terms)), set(match_keywords(h, terms))
        tp, fp, fn = tp + len(in_hyp & in_ref), fp + len(in_hyp - in_ref), fn + len(in_ref - in_hyp)
    return {
        "true_positives": tp, "false_positives": fp, "false_negatives": fn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
    }


def compute_metrics(hyps: Sequence[str], utts: Sequence[Any], n_boot: int = 1000, seed: int = 0) -> dict:
    """All figures for ``hyps[i]`` transcribing ``utts[i]`` (Utterances or manifest dicts)."""
    if len(hyps) != len(utts):
        raise ValueError(f"compute_metrics: {len(hyps)} hypotheses for {len(utts)} utterances")
    speech = [i for i, u in enumerate(utts) if not is_noise(u)]
    noise = [i for i, u in enumerate(utts) if is_noise(u)]
    counts = error_counts([_field(utts[i], "text") for i in speech], [hyps[i] for i in speech])
    per_lang = {}
    for lang, metric in METRIC_BY_LANGUAGE.items():
        sel = [c for c, i in zip(counts, speech) if _field(utts[i], "language") == lang]
        if sel:
            per_lang[lang] = _rate_block(sel, metric, n_boot, seed)
    lang_check = Language()
    judged = [lang_check.score(hyps[i], _field(utts[i], "text"), _field(utts[i], "language")) for i in speech]
    judged = [s for s in judged if s is not None]
    halluc = [bool(hyps[i].strip()) for i in noise]
    return {
        "utterances": len(utts),
        "speech_utterances": len(speech),
        "noise_utterances": len(noise),
        "overall": _rate_block(counts, "mer", n_boot, seed),
        "per_language": per_lang,
        "hallucination_rate": sum(halluc) / len(halluc) if halluc else float("nan"),
        "keywords": _keywords([hyps[i] for i in speech], [utts[i] for i in speech]),
        "language_mismatch_rate": sum(s < 0 for s in judged) / len(judged) if judged else float("nan"),
        "bootstrap": {"n_boot": n_boot, "seed": seed},
        "per_utterance": [[_field(utts[i], "id"), c.errors, c.n] for c, i in zip(counts, speech)],
    }
