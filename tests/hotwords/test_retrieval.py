"""Hotword retrieval's parts, each against hand-worked cases: phonemes, the phoneme search, CTC."""

from __future__ import annotations

import pytest
import torch

from funrl.hotwords import HotwordIndex, ctc_greedy_decode, phonemes
from funrl.hotwords.ctc import ctc_nll
from funrl.hotwords.phonemes import encode
from funrl.hotwords.retrieval import default_threshold


def test_mandarin_is_pinyin_initials_and_toned_finals():
    assert phonemes("高德") == ["g", "ao1", "d", "e2"]
    assert phonemes("张伟") == ["zh", "ang1", "w", "ei3"]
    assert phonemes("爱") == ["ai4"]  # no initial
    assert phonemes("高得") == phonemes("高德")  # 得 and 德 sound alike: de2


def test_english_is_espeak_phonemes_so_spellings_that_sound_alike_match():
    assert phonemes("Netflix") == ["n", "E", "t", "f", "l", "I", "k", "s"]
    assert phonemes("netflicks") == phonemes("Netflix")
    assert phonemes("Zoom") == ["z", "u:", "m"]


def test_mixed_text_keeps_its_order_and_other_characters_fall_back_to_themselves():
    assert phonemes("给 Zoom 2") == ["g", "ei3", "z", "u:", "m", "2"]


def test_a_term_with_one_unit_changed_is_found_and_one_two_edits_past_its_threshold_is_not():
    index = HotwordIndex(["高德地图", "张伟", "Netflix"])
    term = phonemes("高德地图")  # g ao1 d e2 d i4 t u2: 8 units, threshold 2
    assert default_threshold(len(term)) == 2
    before, after = phonemes("用"), phonemes("付款")
    one = term.copy()
    one[3] = "e4"  # de2 -> de4: one substitution
    found = index.search_units(encode(before + one + after))
    assert [(c.term, c.distance) for c in found] == [("高德地图", 1)]
    assert (found[0].start, found[0].end) == (len(before), len(before) + len(term))
    far = term.copy()
    far[0], far[2], far[4], far[6] = "k", "t", "t", "d"  # four edits: two past the threshold
    assert index.search_units(encode(before + far + after)) == []
    edge = term.copy()
    edge[0], edge[2] = "k", "t"  # exactly the threshold
    assert [c.distance for c in index.search_units(encode(before + edge + after))] == [2]


def test_search_from_text_ranks_by_distance_and_finds_sound_alike_spellings():
    index = HotwordIndex(["Ingrid", "Netflix", "Stripe", "高德地图", "Ingrid"])  # a duplicate is indexed once
    assert len(index) == 4
    assert [(c.term, c.distance) for c in index.search("open netflicks and pay with stripe")] == [
        ("Netflix", 0), ("Stripe", 0)]
    assert [(c.term, c.distance) for c in index.search("现在给 ingrit 打电话")] == [("Ingrid", 1)]
    assert index.search("明天订两个人的位子") == []


def test_ctc_greedy_decode_merges_repeats_drops_blanks_and_ignores_padding():
    # labels: 0 blank, 1 'a', 2 'b'; frames by argmax
    frames = [[1, 1, 0, 1, 2, 2, 0], [2, 0, 0, 2, 2, 1, 1]]
    logits = torch.full((2, 7, 3), -5.0)
    for b, row in enumerate(frames):
        for t, label in enumerate(row):
            logits[b, t, label] = 5.0
    # utterance 0: a a _ a b b _ -> a, a, b ; utterance 1 has 5 valid frames: b _ _ b b -> b, b
    assert ctc_greedy_decode(logits, torch.tensor([7, 5])) == [[1, 1, 2], [2, 2]]
    assert ctc_greedy_decode(logits) == [[1, 1, 2], [2, 2, 1]]
    assert ctc_greedy_decode(logits.log_softmax(-1), blank=2) == [[1, 0, 1, 0], [0, 1]]


def test_ctc_nll_worked_by_hand_and_against_every_alignment():
    import itertools
    import math

    # two frames, labels 0 'a' and 1 blank: 'a' is spelt by a a, a _ and _ a
    p = torch.tensor([[[0.6, 0.4], [0.3, 0.7]]])
    got = ctc_nll(p.log(), torch.tensor([2]), [[0]], blank=1)
    assert float(got[0]) == pytest.approx(-math.log(0.6 * 0.3 + 0.6 * 0.7 + 0.4 * 0.3), rel=1e-6)
    # a batch with padding against brute force over all 3^T label paths (blank 2)
    torch.manual_seed(0)
    logp = torch.randn(2, 5, 3).log_softmax(-1)
    lengths, targets = torch.tensor([5, 4]), [[0, 1, 1], [1]]

    def brute(lp, T, target):
        total = 0.0
        for path in itertools.product(range(3), repeat=T):
            out = [k for i, k in enumerate(path) if k != 2 and (i == 0 or path[i - 1] != k)]
            if out == target:
                total += math.exp(sum(float(lp[t, k]) for t, k in enumerate(path)))
        return -math.log(total) if total else math.inf

    got = ctc_nll(logp, lengths, targets, blank=2)
    for b in range(2):
        assert float(got[b]) == pytest.approx(brute(logp[b], int(lengths[b]), targets[b]), rel=1e-5)
    # an empty transcript is all blanks; a target too long for its frames is impossible
    empty = ctc_nll(logp, lengths, [[], [0, 0, 0]], blank=2)
    assert float(empty[0]) == pytest.approx(-float(logp[0, :, 2].sum()), rel=1e-5)
    assert math.isinf(float(empty[1]))  # a a a needs a blank between repeats: 5 frames, 4 valid
