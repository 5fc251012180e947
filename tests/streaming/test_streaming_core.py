"""Streaming's core, against hand-worked cases: the partial reference at a boundary and the
chunk loop's rollback, on a "model" that copies what has been said so far."""

from __future__ import annotations

import pytest

from funrl.streaming import StreamingDecoder, join_words, partial_reference

WORDS = [["turn", 0.10, 0.40], ["on", 0.45, 0.60], ["the", 0.62, 0.75], ["kitchen", 0.80, 1.30], ["light", 1.35, 1.70]]


def test_partial_reference_keeps_only_words_spoken_in_full():
    assert partial_reference(WORDS, 0.05) == ""
    assert partial_reference(WORDS, 0.60) == "turn on"  # "on" ends exactly at the boundary: in
    assert partial_reference(WORDS, 1.00) == "turn on the"  # "kitchen" is cut in half: out
    assert partial_reference(WORDS, 1.70) == "turn on the kitchen light"
    zh = [["现在", 0.0, 0.5], ["给", 0.5, 0.7], ["Ingrid", 0.7, 1.2], ["打", 1.2, 1.4], ["电话", 1.4, 1.9]]
    assert partial_reference(zh, 1.5) == "现在给 Ingrid 打"
    assert join_words(["打", "电话"]) == "打电话"
    with pytest.raises(ValueError, match="ends"):
        partial_reference([["x", 1.0, 0.5]], 2.0)


def test_rollback_policy_on_a_model_that_copies_what_was_said():
    # the "model": the words heard in full by `audio_s`, plus a guess of the word being spoken
    # ("kitten" while "kitchen" is cut); it continues the prefix it is given, token by token
    heard_at = []

    def model(audio_s, prefix):
        heard_at.append((audio_s, list(prefix)))
        said = partial_reference(WORDS, audio_s).split()
        cut = [w for w, s, e in WORDS if s < audio_s < e]
        out = said + (["kitten"] if cut == ["kitchen"] else [])
        assert out[: len(prefix)] == prefix, (audio_s, prefix)  # the rollback never fixes a guess here
        return out[len(prefix):]

    dec = StreamingDecoder(model, chunk_s=0.5, rollback=1)
    assert dec.boundaries(1.7) == [0.5, 1.0, 1.5, 1.7]
    res = dec.run(1.7)
    # by hand, rollback 1: each chunk keeps all but the last token shown and lets the model continue
    assert [p for _, p in res.partials] == [
        ["turn"],                                   # 0.5 s: prefix [] -> turn
        ["turn", "on", "the", "kitten"],            # 1.0 s: prefix [] (turn rolled back) -> turn on the kitten
        ["turn", "on", "the", "kitchen"],           # 1.5 s: prefix turn on the -> kitchen ("kitten" revised)
        ["turn", "on", "the", "kitchen", "light"],  # 1.7 s: prefix turn on the -> kitchen light
    ]
    assert [p for _, p in heard_at] == [[], [], ["turn", "on", "the"], ["turn", "on", "the"]]
    assert res.tokens == "turn on the kitchen light".split()
    assert res.first_token_s == 0.5
    assert res.revisions == 1  # "kitten" -> "kitchen"


def test_no_rollback_never_revises_and_bad_settings_are_refused():
    res = StreamingDecoder(lambda s, p: partial_reference(WORDS, s).split()[len(p):], 0.5, 0).run(1.7)
    assert res.revisions == 0 and res.tokens == "turn on the kitchen light".split()
    with pytest.raises(ValueError):
        StreamingDecoder(lambda s, p: [], chunk_s=0)
