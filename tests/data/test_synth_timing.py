"""Word timings of synthetic speech (issue 19): eSpeak's word events -> ``words`` in the manifest."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from funrl.data.manifest import load_manifest
from funrl.data.synth import voices
from funrl.data.synth.domain import Sentence
from funrl.data.synth.espeak import SynthWorker
from funrl.data.synth.timing import request_timings, utterance_timings
from funrl.streaming import join_words


def test_request_timings_worked_by_hand():
    # "turn on the lights": eSpeak reports no event for "the" (joined to "on"), so "on" and "the"
    # share the span from on's start (300) to lights' start (800), split 2:3 by letters -> 500.
    units = [("turn", 0, 4), ("on", 5, 7), ("the", 8, 11), ("lights", 12, 18)]
    samples = np.zeros(1200, np.int16)
    samples[50:1100] = 1000  # voiced from 50 to 1100 (exclusive)
    events = [(0, 0), (5, 300), (12, 800)]
    assert request_timings(units, events, samples) == [
        ("turn", 50, 300), ("on", 300, 500), ("the", 500, 800), ("lights", 800, 1100)]
    # a spoken form of several eSpeak words ("pie torch") starts at its first event
    units = [("PyTorch", 0, 9), ("logs", 10, 14)]
    assert request_timings(units, [(0, 10), (4, 200), (10, 400)], samples) == [
        ("PyTorch", 50, 400), ("logs", 400, 1100)]


def test_code_switched_utterance_shifts_each_run():
    # two requests of 1000 and 500 samples at 1000 Hz: the second run's times start at 1.0 s
    a, b = np.full(1000, 500, np.int16), np.full(500, 500, np.int16)
    words = utterance_timings([([("call", 0, 4)], [(0, 0)], a), ([("张", 0, 5), ("伟", 6, 9)], [(0, 0), (6, 240)], b)], 1000)
    assert words == [["call", 0.0, 1.0], ["张", 1.0, 1.24], ["伟", 1.24, 1.5]]


def test_real_espeak_events_cover_every_unit_in_order():
    sent = Sentence(("turn", "on", "the", "lights", "in", "the", "kitchen"), "en", ())
    zh = Sentence(("打开", "微信"), "zh", ())
    spk = voices.Speaker("m3", 160, 50)
    reqs = voices.requests_with_units(sent, spk) + voices.requests_with_units(zh, spk)
    with SynthWorker() as w:
        rate, speech = w.run([r for r, _ in reqs])
    for (req, units), sp in zip(reqs, speech):
        timed = request_timings(units, sp.word_starts, sp.samples)
        assert [u for u, _, _ in timed] == [u for u, _, _ in units]
        assert all(s <= e for _, s, e in timed) and all(e1 == s2 for (_, _, e1), (_, s2, _) in zip(timed, timed[1:]))
        assert 0.0 < timed[-1][2] / rate <= len(sp.samples) / rate
        # every unit lasts a plausible time for speech at 160 words a minute
        assert all(0.03 < (e - s) / rate < 1.2 for _, s, e in timed), timed
    assert [u for u, _, _ in units] == ["打", "开", "微", "信"]


def test_corpus_rows_carry_timings_that_match_text_and_audio(small_corpus):
    utts = load_manifest(small_corpus.out_dir / "manifest.jsonl")
    speech = [u for u in utts if not u.noise]
    assert all(u.words == [] for u in utts if u.noise)
    for u in speech:
        assert join_words([w for w, _, _ in u.words]) == u.text
        assert all(a <= b for _, a, b in u.words) and u.words[-1][2] <= u.duration + 1e-3
    clean = [u for u in speech if u.extra["noise_type"] is None]
    assert clean, "the small corpus should hold clean speech"
    for u in clean:  # the audio outside the words is (near) silent, inside it is speech
        wav, rate = sf.read(u.audio, dtype="float32")
        lo, hi = int(u.words[0][1] * rate), int(u.words[-1][2] * rate)
        inside = np.sqrt(np.mean(wav[lo:hi] ** 2))
        outside = np.concatenate([wav[:lo], wav[hi:]])
        assert outside.size == 0 or np.max(np.abs(outside)) < 0.1 * np.max(np.abs(wav[lo:hi])), u.id
        assert inside > 0.01, u.id


@pytest.mark.parametrize("bad, msg", [
    ([["a", 0.5, 0.2]], "need 0 <= start <= end"),
    ([["a", 0.0, 0.5], ["b", 0.3, 0.6]], "before the previous word ends"),
    ([["a", 0.0, 9.0]], "after the clip's duration"),
    ([["a", 0.0]], "a list of \\[word, start_s, end_s\\]"),
])
def test_manifest_refuses_bad_timings(tmp_path, bad, msg):
    import json
    from funrl.data.manifest import ManifestError

    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": "a.wav", "text": "a b", "duration": 1.0, "words": bad}) + "\n")
    with pytest.raises(ManifestError, match=msg) as e:
        load_manifest(tmp_path / "m.jsonl")
    assert "m.jsonl:1" in str(e.value) and "'words'" in str(e.value)
