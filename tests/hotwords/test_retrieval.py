"""Hotword retrieval's parts, each against hand-worked cases: phonemes, the phoneme search, CTC."""

from __future__ import annotations

import torch

from funrl.hotwords import HotwordIndex, ctc_greedy_decode, phonemes
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
