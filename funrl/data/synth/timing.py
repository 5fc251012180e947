"""Word timings of a synthesised utterance from eSpeak's word events (issue 19's ``words`` field).

eSpeak reports, for each word it speaks, the character where the word starts in the input and the
sample where its sound starts. Our timing units are the transcript's words (English; one unit may be
several spoken words, ``PyTorch`` = "pie torch") and Mandarin characters (one pinyin syllable each).

- A unit starts at the first word event inside its characters. eSpeak joins some unstressed
  function words to their neighbour and reports one event for both ("on the", "in the"); a unit
  without an event of its own shares the span of the unit before it (from that unit's start to the
  next event), split by letter count. The first unit starts no earlier than the first voiced
  sample (eSpeak's first event is at sample 0, before its lead-in silence).
- A unit ends where the next one starts (connected speech has no gaps between words); the last
  unit of a request ends at the request's last voiced sample (above 2% of its peak), so eSpeak's
  trailing silence is not counted as speech.
- A code-switched sentence is several requests whose audio is concatenated: each request's times
  are shifted by the samples before it. Resampling to 16 kHz keeps times in seconds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

VOICED = 0.02  # of the request's peak: the threshold of its first and last voiced samples


def _voiced_bounds(samples: np.ndarray) -> tuple[int, int]:
    a = np.abs(samples.astype(np.float32))
    if not len(a) or a.max() == 0:
        return 0, len(a)
    idx = np.nonzero(a > VOICED * a.max())[0]
    return int(idx[0]), int(idx[-1]) + 1


def request_timings(units: Sequence[tuple[str, int, int]], word_starts: Sequence[tuple[int, int]],
                    samples: np.ndarray) -> list[tuple[str, int, int]]:
    """``[(unit, start sample, end sample)]`` for one request (see the module docstring)."""
    if not units:
        return []
    first_voiced, last_voiced = _voiced_bounds(samples)
    starts: list[int | None] = []
    for _, lo, hi in units:
        hits = [smp for pos, smp in word_starts if lo <= pos < hi]
        starts.append(min(hits) if hits else None)
    if starts[0] is None:
        starts[0] = 0
    starts[0] = max(starts[0], first_voiced)
    i = 0
    while i < len(units):  # units without an event share the span of the unit before them
        j = i + 1
        while j < len(units) and starts[j] is None:
            j += 1
        if j > i + 1:
            stop = starts[j] if j < len(units) else last_voiced
            letters = [max(1, hi - lo) for _, lo, hi in units[i:j]]
            edges = starts[i] + (stop - starts[i]) * np.cumsum([0] + letters) / sum(letters)
            for k in range(i + 1, j):
                starts[k] = int(round(edges[k - i]))
        i = j
    ends = [max(s, e) for s, e in zip(starts, starts[1:] + [max(last_voiced, starts[-1])])]
    return [(u[0], int(s), int(e)) for u, s, e in zip(units, starts, ends)]


def utterance_timings(pieces: Sequence[tuple[Sequence[tuple[str, int, int]], Sequence[tuple[int, int]], np.ndarray]],
                      rate: int) -> list[list]:
    """``words`` for the manifest: ``[[unit, start_s, end_s], …]`` over the requests ``pieces``
    (``(units, word_starts, samples)`` each, in the order their audio is concatenated)."""
    out, offset = [], 0
    for units, word_starts, samples in pieces:
        for unit, s, e in request_timings(units, word_starts, samples):
            out.append([unit, round((offset + s) / rate, 3), round((offset + e) / rate, 3)])
        offset += len(samples)
    return out
