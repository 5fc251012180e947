"""``funrl data align``: word timings by CTC forced alignment (the ctc-segmentation library) with a
model's CTC head, turned into our timing units."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from funrl.data.align import Aligner, boundary_agreement, forced_align, timing_units, token_times, unit_timings
from funrl.data.manifest import load_manifest
from funrl.streaming import join_words

from tests.hotwords.test_rag_eval import WARM, corpus  # noqa: F401 - fixture


def emissions(path: list[int], vocab: int = 4, blank: int = 3) -> np.ndarray:
    """Log-probs ``[T, vocab]`` putting 0.97 on the label of each frame of ``path``."""
    x = np.full((len(path), vocab), np.log(0.01))
    for t, label in enumerate(path):
        x[t, label] = np.log(0.97)
    return x


def brute_force(logp: np.ndarray, ids: list[int], blank: int):
    """The best CTC path of ``ids`` by trying every frame labelling that collapses to it (slow reference)."""
    import itertools

    T, V = logp.shape
    best, arg = -np.inf, None
    for labels in itertools.product(range(V), repeat=T):
        collapsed = [x for k, x in enumerate(labels) if x != blank and (k == 0 or labels[k - 1] != x)]
        if collapsed != list(ids):
            continue
        score = sum(logp[t, x] for t, x in enumerate(labels))
        if score > best:
            best, arg = score, labels
    if arg is None:
        return None
    out, j = [], -1  # token index per frame, -1 for blank
    for k, x in enumerate(arg):
        if x != blank and (k == 0 or arg[k - 1] != x):
            j += 1
        out.append(j if x != blank else -1)
    return np.array(out)


def test_forced_align_finds_the_best_path_of_a_brute_force_search():
    rng = np.random.default_rng(0)
    for T, ids in [(5, [0, 1]), (6, [1, 1]), (6, [0, 2, 0]), (4, [2]), (7, [0, 1, 1])]:
        for _ in range(4):
            logp = np.log(rng.dirichlet(np.ones(4) * 0.5, size=T))
            want, got = brute_force(logp, ids, 3), forced_align(logp, ids, 3)
            assert (want is None) == (got is None)
            if want is not None:
                score = lambda p: sum(logp[t, ids[j] if j >= 0 else 3] for t, j in enumerate(p))  # noqa: E731
                assert score(got) == pytest.approx(score(want))  # the same best score (ties may differ in path)
    assert forced_align(np.zeros((2, 4)), [1, 1], 3) is None  # a repeat needs a blank between: 3 frames


def test_token_times_from_a_hand_made_emission_matrix():
    # 10 frames of 0.1 s: token 0 spikes at frame 1, token 1 at frames 4-5, token 2 at frame 8
    b = 3
    x = emissions([b, 0, b, b, 1, 1, b, b, 2, b])
    assert forced_align(x, [0, 1, 2], b).tolist() == [-1, 0, -1, -1, 1, 1, -1, -1, 2, -1]
    t = token_times(x, [0, 1, 2], blank=b, frame_s=0.1)
    centres = [0.15, 0.5, 0.85]  # frame 1 is 0.1-0.2 s, frames 4-5 0.4-0.6 s, frame 8 0.8-0.9 s
    assert t.tolist() == pytest.approx([0.1, (centres[0] + centres[1]) / 2, (centres[1] + centres[2]) / 2, 0.9])
    assert token_times(emissions([b, 0]), [0, 1, 2], blank=b, frame_s=0.1) is None  # 2 frames, 3 tokens


def test_units_from_token_spans_worked_by_hand():
    assert timing_units("给 Ingrid 打电话") == [("给", 0, 1), ("Ingrid", 2, 8), ("打", 9, 10), ("电", 10, 11), ("话", 11, 12)]
    text = "给 Ingrid 打电话"
    offsets = [(0, 1), (1, 8), (8, 12)]  # "给", " Ingrid", " 打电话" (the space belongs to the token after it)
    times = np.array([0.1, 0.5, 1.2, 2.1])
    # " 打电话" lasts 1.2-2.1 s and holds three characters: 0.3 s each
    assert unit_timings(text, offsets, times, duration=2.5) == [
        ["给", 0.1, 0.5], ["Ingrid", 0.5, 1.2], ["打", 1.2, 1.5], ["电", 1.5, 1.8], ["话", 1.8, 2.1]]
    # byte-level pieces of one character add up: three tokens on "高", one on "德"
    assert unit_timings("高德", [(0, 1), (0, 1), (0, 1), (1, 2)], np.array([0.0, 0.2, 0.3, 0.6, 0.9]), 1.0) == [
        ["高", 0.0, 0.6], ["德", 0.6, 0.9]]


def test_boundary_agreement_counts_inner_boundaries():
    a = [["call", 0.0, 0.4], ["Ingrid", 0.4, 0.9]]
    b = [["call", 0.0, 0.6], ["Ingrid", 0.6, 0.9]]
    assert boundary_agreement(a, b, 1.2, 0.5) == (1, 2)  # at 0.5 a has "call" heard, b not; at 1.0 both agree


def test_aligner_on_the_warm_start_gives_timings_of_every_unit(corpus):  # noqa: F811
    utts = load_manifest(corpus / "train.jsonl")
    got = Aligner(str(WARM)).align([u.to_dict() for u in utts])
    for u, words in zip(utts, got):
        assert words is not None and join_words([w for w, _, _ in words]) == u.text
        assert all(0 <= s <= e <= u.duration + 1e-6 for _, s, e in words)
        assert all(e1 <= s2 + 1e-9 for (_, _, e1), (_, s2, _) in zip(words, words[1:]))
    # against eSpeak's own timings: the median unit boundary is within 0.4 s (the tiny head is coarse;
    # the README gives the figures on the test split)
    err = [abs(x[2] - y[2]) for u, w in zip(utts, got) for x, y in zip(w, u.words)]
    assert np.median(err) < 0.4


def test_the_cli_writes_an_aligned_manifest(corpus, tmp_path):  # noqa: F811
    out = tmp_path / "aligned.jsonl"
    r = subprocess.run([sys.executable, "-m", "funrl", "data", "align", str(corpus / "train.jsonl"), "--model", str(WARM),
                        "--out", str(out), "--compare"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "with word timings" in r.stdout and "agree at" in r.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    src = load_manifest(corpus / "train.jsonl")
    assert [r["id"] for r in rows] == [u.id for u in src] and all(r["words"] for r in rows)
    assert load_manifest(out)  # what it wrote is a valid manifest
    import shutil

    headless = tmp_path / "headless"
    shutil.copytree(WARM, headless, ignore=shutil.ignore_patterns("ctc.*"))
    bad = subprocess.run([sys.executable, "-m", "funrl", "data", "align", str(corpus / "train.jsonl"), "--model",
                          str(headless), "--out", str(tmp_path / "x.jsonl")], capture_output=True, text=True)
    assert bad.returncode == 2 and "no CTC head" in bad.stdout and not (tmp_path / "x.jsonl").exists()
