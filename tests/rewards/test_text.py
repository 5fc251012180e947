"""funrl.rewards.text: normalisation, units, error counts (vs a slow DP), language, keywords."""

from __future__ import annotations

import doctest
import random

import pytest

import funrl.rewards.text as text
from funrl.rewards.text import ErrorCounts, TextNorm, detect_language, error_counts, error_rate, match_keywords, normalize, units


def test_doctests():
    res = doctest.testmod(text)
    assert res.failed == 0 and res.attempted > 0


def test_normalize_case_punctuation_width():
    # ASCII punctuation -> space, full-width letters and "，" folded by NFKC, "。" and "、" are
    # CJK punctuation (category Po) -> space, the apostrophe inside "It's" is dropped.
    assert normalize("It's ＯＫ，Ｂob。 好、的!!") == "its ok bob 好 的"
    assert normalize("A-B", TextNorm(punctuation=False)) == "a-b"
    assert normalize("Hello", TextNorm(lowercase=False)) == "Hello"
    assert normalize("ＡＢ", TextNorm(width=False, lowercase=False)) == "ＡＢ"


def test_units_mandarin_and_code_switched():
    assert units("今天天气很好。") == ["今", "天", "天", "气", "很", "好"]
    # code-switched: CJK per character, Latin per word; digits are their own word
    assert units("我用iPhone 15拍照") == ["我", "用", "iphone", "15", "拍", "照"]


def test_mandarin_cer_hand_worked():
    # ref 今天天气很好 (6 chars), hyp 今天天汽很好啊: 气->汽 substitution, 啊 insertion
    c = error_counts(["今天天气很好"], ["今天天汽很好啊"])[0]
    assert (c.substitutions, c.deletions, c.insertions, c.hits) == (1, 0, 1, 5)
    assert c.rate == pytest.approx(2 / 6)


def test_code_switched_mer_hand_worked():
    # ref units: 我 们 开 个 meeting 吧 (6); hyp units: 我 们 开 个 meetings (5)
    # meeting->meetings substitution, 吧 deleted: 2 errors / 6
    c = error_counts(["我们开个 meeting 吧"], ["我们开个meetings"])[0]
    assert (c.substitutions, c.deletions, c.insertions) == (1, 1, 0)
    assert c.rate == pytest.approx(2 / 6)


def test_punctuation_and_case_do_not_count():
    assert error_counts(["Hello, World!"], ["hello world"])[0].rate == 0.0
    # with normalisation off, "Hello," vs "hello" and "World!" vs "world" are 2 substitutions
    raw = TextNorm(lowercase=False, punctuation=False, width=False)
    assert error_counts(["Hello, World!"], ["hello world"], raw)[0].substitutions == 2


def test_empty_reference_and_empty_hypothesis():
    empty_ref, both_empty, empty_hyp = error_counts(["", "", "a b c"], ["uh huh", "", ""])
    assert (empty_ref.insertions, empty_ref.n, empty_ref.rate) == (2, 0, 1.0)
    assert both_empty.rate == 0.0
    assert (empty_hyp.deletions, empty_hyp.rate) == (3, 1.0)


def test_corpus_rate_sums_counts_not_rates():
    # pair 1: 1 error / 2 units (rate 0.5), pair 2: 0 / 8; corpus 1/10, not mean(0.5, 0) = 0.25
    refs, hyps = ["a b", "c d e f g h i j"], ["a x", "c d e f g h i j"]
    assert error_rate(refs, hyps) == pytest.approx(0.1)
    assert sum(error_counts(refs, hyps)) == ErrorCounts(substitutions=1, hits=9)


def _levenshtein(a: list[str], b: list[str]) -> int:
    """Slow, obvious edit distance for cross-checking jiwer."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_error_counts_match_slow_edit_distance():
    rng = random.Random(0)
    vocab = ["a", "b", "c", "猫", "狗", "de"]
    refs = [" ".join(rng.choices(vocab, k=rng.randint(0, 9))) for _ in range(200)]
    hyps = [" ".join(rng.choices(vocab, k=rng.randint(0, 9))) for _ in range(200)]
    for r, h, c in zip(refs, hyps, error_counts(refs, hyps)):
        assert c.errors == _levenshtein(units(r), units(h))
        assert c.n == len(units(r))


def _random_texts(n: int, seed: int) -> list[str]:
    """Mixed-script strings with punctuation, apostrophes, full-width forms and odd spaces."""
    rng = random.Random(seed)
    pieces = ["the", "Cat", "don't", "O’Brien", "GPT-4", "3.5", "我", "们", "北京", "ビデオ", "ＡＢＣ", "，", "。",
              "!", "'", "''", "…", "①", "ﬁne", "İstanbul", "\u3000", "  ", "\t", "$5", "e-mail", "x'", "'y"]
    return ["".join(rng.choice([" ", ""]) + rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def test_fast_units_equal_units_of_normalized_text():
    # units() takes a faster route than splitting normalize()'s output; they must agree
    for norm in (TextNorm(), TextNorm(punctuation=False), TextNorm(lowercase=False, width=False)):
        for s in _random_texts(2000, 1):
            assert norm.units(s) == text._UNIT.findall(norm.normalize(s)), s


def test_error_counts_equal_jiwer():
    # counts_from_units re-implements jiwer.process_words' counting on jiwer's engine; check it
    # against jiwer itself, pair by pair (jiwer refuses empty references, so those are left out)
    import jiwer

    rng = random.Random(2)
    vocab = ["a", "b", "c", "d", "猫", "狗"]
    refs = [" ".join(rng.choices(vocab, k=rng.randint(1, 15))) for _ in range(1000)]
    hyps = [" ".join(rng.choices(vocab, k=rng.randint(0, 15))) for _ in range(1000)]
    ours = error_counts(refs, hyps)
    for r, h, c in zip(refs, hyps, ours):
        j = jiwer.process_words(r, h)
        assert (c.substitutions, c.deletions, c.insertions, c.hits) == (j.substitutions, j.deletions, j.insertions, j.hits)


def test_raw_spans_agree_with_units():
    norm = TextNorm()
    for s in ["Hi, don't 我们！ ＡＢ", "e.g. COVID-19 在 2024年", "  ", "rock'n'roll ’twas", "①②", *_random_texts(500, 3)]:
        for n in (norm, TextNorm(punctuation=False)):
            spans = n.spans(s)
            assert [u for u, _, _ in spans] == n.units(s), s
    assert norm.spans("Hi, 我") == [("hi", 0, 2), ("我", 4, 5)]


@pytest.mark.parametrize(
    "s, lang",
    [
        ("Hello there", "en"),
        ("今天天气很好", "zh"),
        # 6 Han + 1 Latin word: Latin share 1/7 = 0.14 >= 0.1 -> mixed
        ("我们今天开个 meeting", "mixed"),
        # 11 Han + 1 Latin: share 1/12 = 0.083 < 0.1 -> zh
        ("我们今天下午三点在公司开 zoom", "zh"),
        ("Привет мир", "other"),
        ("", None),
        ("123 !", None),
    ],
)
def test_detect_language(s, lang):
    assert detect_language(s) == lang


def test_match_keywords_boundaries_case_cjk_multiword():
    t = "Please call Dr. O'Brien at 北京大学 about catalysts"
    assert match_keywords(t, ["dr obrien", "DR. O'BRIEN", "北京", "大学", "cat", "catalysts", "京大"]) == [
        "dr obrien", "DR. O'BRIEN", "北京", "大学", "catalysts", "京大"
    ]
    assert match_keywords(t, ["", "!!!"]) == []  # terms with no units never match
