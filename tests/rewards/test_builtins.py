"""The four built-in rewards: one hand-worked case per rule, plus their docstring examples."""

from __future__ import annotations

import doctest

import pytest

import funrl.rewards.accuracy
import funrl.rewards.combiner
import funrl.rewards.hallucination
import funrl.rewards.keywords
import funrl.rewards.language
from funrl.rewards.accuracy import Accuracy
from funrl.rewards.hallucination import Hallucination, Span
from funrl.rewards.keywords import Keywords
from funrl.rewards.language import Language


@pytest.mark.parametrize(
    "module",
    [funrl.rewards.accuracy, funrl.rewards.keywords, funrl.rewards.hallucination, funrl.rewards.language, funrl.rewards.combiner],
)
def test_docstring_examples_run(module):
    res = doctest.testmod(module)
    assert res.failed == 0 and res.attempted > 0


def call(fn, hyps, refs, samples=None):
    return fn(hyps, references=refs, samples=samples or [{}] * len(hyps))


# ----------------------------------------------------------------------------- accuracy


def test_accuracy_rules():
    acc = Accuracy()
    got = call(
        acc,
        ["今天天汽很好", "我们开个 Meeting!", "", "", "Hello, WORLD.", "x y z w v"],
        ["今天天气很好", "我们开个meeting吧", "", "a b c d", "hello world", "a"],
    )
    assert got == pytest.approx([
        1 - 1 / 6,  # Mandarin CER: 气->汽, 1 of 6 characters
        1 - 1 / 6,  # code-switched: 我 们 开 个 meeting 吧 (6 units), 吧 deleted
        1.0,  # empty reference, empty output: nothing to get wrong
        0.0,  # empty output: 4 deletions / 4
        1.0,  # punctuation and case are normalised away
        -1.0,  # 1 substitution + 4 insertions on 1 unit: WER 5, 1-5 = -4, clamped at -1
    ])
    assert call(acc, ["uh"], [""]) == [0.0]  # output on pure noise: WER defined as 1
    assert call(Accuracy(min_reward=None), ["x y z w v"], ["a"]) == [-4.0]
    assert call(Accuracy(lowercase=False), ["Hello world"], ["hello world"]) == [0.5]


# ----------------------------------------------------------------------------- keywords


def test_keywords_distractor_hotwords():
    kw = Keywords()
    sample = {"keywords": ["张伟", "Qwen3"], "hotwords": ["张伟", "章炜", "Qwen3", "Qwen2"]}
    ref = "张伟在测试Qwen3模型"
    got = call(kw, ["张伟在测试qwen3模型", "章炜在测试Qwen2模型", "张伟在测试Qwen2模型", "张伟和章炜在测试模型"], [ref] * 4, [sample] * 4)
    # 1: TP 2 -> P=R=1 -> F1 1
    # 2: both distractors: TP 0, FP 2, FN 2 -> P=R=0 -> 0
    # 3: TP 1 (张伟), FP 1 (Qwen2), FN 1 (Qwen3): P=R=1/2 -> F1 1/2
    # 4: TP 1, FP 1 (章炜), FN 1 (Qwen3): P=R=1/2 -> F1 1/2
    assert got == pytest.approx([1.0, 0.0, 0.5, 0.5])


def test_keywords_modes_and_not_applicable():
    sample = {"keywords": ["alpha", "beta gamma"], "hotwords": ["delta"]}
    # hyp has alpha (TP) and delta (FP) and misses the multi-word "beta gamma" (FN: "beta"
    # alone is not the term): P = 1/2, R = 1/2 -> F1 = 1/2
    hyp, ref = "alpha beta delta", "alpha beta gamma"
    assert call(Keywords(), [hyp], [ref], [sample]) == pytest.approx([0.5])
    # F2 with P = 1 (no FP), R = 1/2: 5·1·0.5 / (4·1 + 0.5) = 2.5/4.5
    assert call(Keywords(beta=2.0), ["alpha"], [ref], [sample]) == pytest.approx([2.5 / 4.5])
    # weighted 0.25·P + 0.75·R with P = 1, R = 1/2 -> 0.625
    w = Keywords(mode="weighted", precision_weight=0.25, recall_weight=0.75)
    assert call(w, ["alpha"], [ref], [sample]) == pytest.approx([0.625])
    # no keywords -> None, even with hotwords
    assert call(Keywords(), ["alpha"], [ref], [{"hotwords": ["alpha"]}]) == [None]
    # case-insensitive and punctuation-insensitive
    assert call(Keywords(), ["ALPHA, Beta-Gamma"], [ref], [sample]) == [1.0]
    with pytest.raises(ValueError, match="mode must be 'fbeta' or 'weighted'"):
        Keywords(mode="f1")


# ----------------------------------------------------------------------------- hallucination


def test_hallucination_noise_sample():
    h = Hallucination()
    # empty reference: every unit is hallucinated; "Thank you for watching" = 4 units -> -0.4
    assert call(h, ["Thank you for watching.", ""], ["", ""]) == pytest.approx([-0.4, 0.0])
    assert h.last_spans[0] == [Span(0, 22, "noise", "Thank you for watching")]


def test_hallucination_repeated_loops():
    h = Hallucination(length_ratio=None)
    # "好的" x5 on reference "好的": loop of the 2-gram 好 的; first copy legit, 4 copies = 8 units
    # -> -0.8. Reference "no no no" repeats "no" 3 times, so 3 copies are legit; 5 in the output -> 2 flagged.
    got = call(h, ["好的好的好的好的好的", "no no no no no", "go go"], ["好的", "no no no", "go go"])
    assert got == pytest.approx([-0.8, -0.2, 0.0])  # "go go": 2 < loop_min_repeats=3, not a loop
    spans = h.spans(["a b c b c b c d"], ["a b c d"])[0]
    assert spans == [Span(6, 13, "loop", "b c b c")]


def test_hallucination_phrases_en_zh_and_reference_counts():
    h = Hallucination(length_ratio=None)
    got = call(
        h,
        ["今天天气很好。谢谢观看！", "ok thanks for watching", "thanks for watching", "bye bye now"],
        ["今天天气很好", "ok", "thanks for watching", "now"],
    )
    # 谢谢观看 = 4 characters -> -0.4; "thanks for watching" 3 words -> -0.3; said in the
    # reference -> not a hallucination; "bye bye" is not a default phrase
    assert got == pytest.approx([-0.4, -0.3, 0.0, 0.0])
    custom = Hallucination(length_ratio=None, extra_phrases=["bye bye"])
    assert call(custom, ["bye bye now"], ["now"]) == pytest.approx([-0.2])
    only = Hallucination(length_ratio=None, phrases=["bye bye"])
    assert call(only, ["thanks for watching"], ["now"]) == [0.0]


def test_hallucination_length_ratio_and_cap():
    # reference 4 units, ratio 1.5 -> 6 allowed; output 9 units -> 3 flagged -> -0.3
    h = Hallucination()
    assert call(h, ["a b c d e f g h i"], ["a b c d"]) == pytest.approx([-0.3])
    assert h.last_spans[0] == [Span(12, 17, "length", "g h i")]
    # 30 noise units capped at max_penalty 1.0; unbounded when max_penalty is None
    long = " ".join(f"w{i}" for i in range(30))
    assert call(h, [long], [""]) == pytest.approx([-1.0])
    assert call(Hallucination(max_penalty=None), [long], [""]) == pytest.approx([-3.0])


def test_hallucination_unit_counted_once_across_rules():
    # ref 2 units -> 3 allowed; output "ok ok ok ok ok" (5): loop flags units 1..4, length flags 3..4;
    # union = 4 units -> -0.4
    h = Hallucination()
    assert call(h, ["ok ok ok ok ok"], ["ok go"]) == pytest.approx([-0.4])


# ----------------------------------------------------------------------------- language


def test_language_rules():
    lang = Language()
    got = call(
        lang,
        ["今天天气很好", "The weather is nice today", "我们开个 meeting 吧", "我们开个会吧", "Let's have a meeting", "2024", "Привет", "hello"],
        ["今天天气很好", "今天天气很好", "我们开个meeting吧", "我们开个meeting吧", "我们开个meeting吧", "二零二四", "hello", ""],
        [{"language": "zh"}, {"language": "zh"}, {"language": "mixed"}, {"language": "mixed"}, {"language": "mixed"}, {"language": "zh"}, {"language": "en"}, {}],
    )
    # correct; translated zh->en; mixed accepts mixed; mixed rendered all-zh / all-en (translation);
    # digits only: cannot judge -> 0; Cyrillic for English; no language and empty reference -> None
    assert got == [0.0, -1.0, 0.0, -1.0, -1.0, 0.0, -1.0, None]


def test_language_falls_back_to_reference_and_never_penalises_the_reference():
    lang = Language(penalty=-2.0)
    # no `language`: expected = detected from the reference
    assert call(lang, ["hello", "你好"], ["hi there", "hi there"]) == [0.0, -2.0]
    # labelled zh, reference holds an English name (detects as mixed): the exact reference is fine
    ref = "我们用iPhone拍照"
    assert call(lang, [ref], [ref], [{"language": "zh"}]) == [0.0]
    with pytest.raises(ValueError, match="sample language 'fr' is not one of en, zh, mixed"):
        call(lang, ["bonjour"], ["bonjour"], [{"language": "fr"}])


def test_loop_prefilter_changes_nothing():
    # _may_loop only skips the backtracking loop regex; with it forced on, results must be equal
    import random

    rng = random.Random(5)
    fast, slow = Hallucination(length_ratio=None), Hallucination(length_ratio=None)
    slow._may_loop = lambda units: True
    for _ in range(1500):
        hyp = " ".join(rng.choices("abcd", k=rng.randint(0, 14)))
        ref = " ".join(rng.choices("abcd", k=rng.randint(1, 6)))
        assert fast.find(hyp, ref) == slow.find(hyp, ref), (hyp, ref)


def test_hallucination_flags_unheard_words_on_streaming_samples():
    h = Hallucination()
    # target "call Ingrid" (2 words spoken by the boundary); the completion goes on with "tomorrow at
    # six": offline (ratio 1.5) only the 4th and 5th words are flagged (floor(1.5*2)=3); on a
    # streaming sample every word past the target's 2 is one not heard yet: 3 words -> -0.3
    out = ["call Ingrid tomorrow at six"]
    assert h(out, references=["call Ingrid"], samples=[{}]) == pytest.approx([-0.2])
    assert h(out, references=["call Ingrid"], samples=[{"stream_boundary_s": 1.44}]) == pytest.approx([-0.3])
    assert h.last_spans[0] == [Span(12, 27, "unheard", "tomorrow at six")]
    assert h(["call Ingrid"], references=["call Ingrid"], samples=[{"stream_boundary_s": 1.44}]) == [0.0]
    # an empty target at the boundary (nothing finished yet): any word is flagged by the noise rule
    assert h(["call"], references=[""], samples=[{"stream_boundary_s": 0.72}]) == pytest.approx([-0.1])
