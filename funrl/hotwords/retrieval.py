"""Hotword retrieval: which terms of a user's vocabulary a first-pass hypothesis may contain.

Each term is indexed by its phoneme units (:mod:`funrl.hotwords.phonemes`). A query is the
hypothesis's units; a term is a candidate when it matches a stretch of the hypothesis within
``max_distance(term)`` unit edits (Levenshtein: substitutions, insertions, deletions), the
approximate-substring match the report's retrieval makes. The search:

1. prefilter by the inverted index of unit bigrams (a term sharing no bigram with the hypothesis
   cannot be within a small distance, except for very short terms, which are checked whole);
2. for each remaining term, rapidfuzz's ``partial_ratio_alignment`` finds the best-aligned
   stretch of the hypothesis, and ``Levenshtein.distance`` is taken against the stretches that
   start and end within the allowed distance of it; the smallest counts;
3. the top ``k`` by distance (then by length, longer first), within the threshold.

The default threshold is ``max(1, floor(0.25 · units))``: one edit for terms of 4–7 units (a
two-syllable Mandarin word, a short English name), two for 8–11, and so on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from funrl.hotwords.phonemes import encode, phonemes


@dataclass(frozen=True)
class Candidate:
    term: str
    distance: int  # unit edits between the term and the best stretch of the hypothesis
    start: int  # that stretch, in the hypothesis's units
    end: int


def default_threshold(n_units: int) -> int:
    return max(1, n_units // 4)


class HotwordIndex:
    """A vocabulary's phoneme index. ``terms``: one string each (Mandarin, English or mixed)."""

    def __init__(self, terms: Iterable[str], threshold: Callable[[int], int] = default_threshold):
        self.terms: list[str] = []
        self.codes: list[str] = []
        self.threshold = threshold
        self.by_bigram: dict[str, list[int]] = defaultdict(list)
        short: list[int] = []  # terms of one unit: no bigram to find them by
        seen = set()
        for t in terms:
            t = t.strip()
            if not t or t in seen:
                continue
            seen.add(t)
            code = encode(phonemes(t))
            if not code:
                continue
            i = len(self.terms)
            self.terms.append(t)
            self.codes.append(code)
            grams = {code[j:j + 2] for j in range(len(code) - 1)}
            for g in grams:
                self.by_bigram[g].append(i)
            if not grams:
                short.append(i)
        self.short = np.asarray(short, dtype=np.int64)
        self.limits = np.asarray([threshold(len(c)) for c in self.codes], dtype=np.int64)
        # a term within `limit` edits keeps at least (bigrams - 2·limit) of its distinct bigrams
        n_grams = np.asarray([len({c[j:j + 2] for j in range(len(c) - 1)}) for c in self.codes], dtype=np.int64)
        self.need = np.maximum(1, n_grams - 2 * self.limits)
        self.postings = {g: np.asarray(ids, dtype=np.int64) for g, ids in self.by_bigram.items()}

    @classmethod
    def from_file(cls, path) -> "HotwordIndex":
        """One term per line (``#`` comments and blank lines skipped)."""
        with open(path, encoding="utf-8") as f:
            return cls(line for line in f if not line.lstrip().startswith("#"))

    def __len__(self) -> int:
        return len(self.terms)

    def search(self, hypothesis: str, k: int = 10) -> list[Candidate]:
        """The up to ``k`` terms found in ``hypothesis`` within their thresholds, best first."""
        return self.search_units(encode(phonemes(hypothesis)), k)

    def search_units(self, hyp: str, k: int = 10) -> list[Candidate]:
        """:meth:`search` on a hypothesis already turned into units (:func:`phonemes.encode`)."""
        if not hyp or not self.terms:
            return []
        lists = [self.postings[g] for g in {hyp[j:j + 2] for j in range(len(hyp) - 1)} if g in self.postings]
        shared = np.bincount(np.concatenate(lists), minlength=len(self.terms)) if lists else np.zeros(len(self.terms), np.int64)
        cands = np.concatenate([np.nonzero(shared >= self.need)[0], self.short])
        found = []
        for i in cands.tolist():
            hit = _substring_distance(self.codes[i], hyp, int(self.limits[i]))
            if hit is not None:
                found.append(Candidate(self.terms[i], *hit))
        found.sort(key=lambda c: (c.distance, -len(c.term), c.term))
        return found[:k]

    def search_batch(self, hypotheses: Sequence[str], k: int = 10) -> list[list[Candidate]]:
        return [self.search(h, k) for h in hypotheses]


def _substring_distance(term: str, hyp: str, limit: int) -> tuple[int, int, int] | None:
    """``(distance, start, end)`` of the stretch of ``hyp`` closest to ``term`` in Levenshtein
    distance, if within ``limit``; searched around rapidfuzz's best partial alignment."""
    n = len(term)
    if n >= len(hyp):
        d = Levenshtein.distance(term, hyp, score_cutoff=limit)
        return (d, 0, len(hyp)) if d <= limit else None
    a = fuzz.partial_ratio_alignment(term, hyp)
    s0, e0 = (a.dest_start, a.dest_end) if a is not None else (0, n)
    best = None
    for s in range(max(0, s0 - limit), min(len(hyp), s0 + limit) + 1):
        for e in range(max(s + 1, e0 - limit, s + n - limit), min(len(hyp), e0 + limit, s + n + limit) + 1):
            d = Levenshtein.distance(term, hyp[s:e], score_cutoff=limit)
            if d <= limit and (best is None or d < best[0]):
                best = (d, s, e)
                if d == 0:
                    return best
    return best
