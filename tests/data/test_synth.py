"""Synthetic corpora: content, determinism, splits, noise, the eSpeak wrapper and the domain."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from funrl.data.manifest import load_manifest
from funrl.data.synth import domain, noise, voices
from funrl.data.synth.corpus import synthesize_corpus
from funrl.data.synth.espeak import EspeakError, SynthRequest, SynthWorker


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_corpus_files_manifest_and_splits(small_corpus, small_corpus_args):
    out = small_corpus.out_dir
    utts = load_manifest(out / "manifest.jsonl", check_audio=True)
    assert len(utts) == small_corpus_args["n"] == len(list((out / "wav").glob("*.wav")))
    splits = {s: load_manifest(out / f"{s}.jsonl", check_audio=True)
              for s in ("train", "dev", "test")}
    ids = [u.id for rows in splits.values() for u in rows]
    assert sorted(ids) == sorted(u.id for u in utts)  # disjoint and complete
    assert all(len(rows) > 0 for rows in splits.values())
    texts = {s: {u.text for u in rows if not u.noise} for s, rows in splits.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["dev"]
    for u in utts:
        info = sf.info(u.audio)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert u.duration == pytest.approx(info.frames / 16000, abs=1e-4)
        assert 1.0 <= u.duration <= 4.5, (u.id, u.text, u.duration)
        assert set(u.keywords) <= set(u.hotwords)
        assert all(h in domain.rare_terms() for h in u.hotwords)


def test_noise_clips_and_noisy_speech(small_corpus, small_corpus_args):
    utts = small_corpus.utterances
    noise_clips = [u for u in utts if u.noise]
    assert len(noise_clips) == round(small_corpus_args["n"] * 0.2)
    for u in noise_clips:
        assert u.text == "" and u.keywords == [] and u.language is None  # multilingual corpus
        assert u.extra["noise_type"] in noise.NOISE_TYPES
        x, _ = sf.read(u.audio)
        rms_db = 20 * np.log10(np.sqrt(np.mean(x**2)))
        assert -45.5 <= rms_db <= -19.5  # drawn in -45..-20 dBFS
    speech = [u for u in utts if not u.noise]
    assert {u.language for u in speech} <= {"en", "zh", "mixed"}
    noisy = [u for u in speech if u.extra["snr_db"] is not None]
    assert noisy and all(5.0 <= u.extra["snr_db"] <= 30.0 for u in noisy)


def test_same_seed_gives_byte_identical_corpus_and_another_seed_does_not(
        small_corpus, small_corpus_args, tmp_path):
    again = synthesize_corpus(tmp_path / "again", **small_corpus_args)
    assert _hashes(again.out_dir) == _hashes(small_corpus.out_dir)
    args = {**small_corpus_args, "n": 6, "seed": small_corpus_args["seed"] + 1}
    other = synthesize_corpus(tmp_path / "other", **args)
    first = _hashes(small_corpus.out_dir)
    assert all(first.get(k) != v for k, v in _hashes(other.out_dir).items() if k.startswith("wav/"))


def test_single_language_corpus_labels_noise_with_that_language(tmp_path):
    rep = synthesize_corpus(tmp_path / "zh", 8, seed=1, languages=("zh",), noise_frac=0.25,
                            noisy_frac=0.0)
    langs = Counter((u.language, u.noise) for u in rep.utterances)
    assert langs == {("zh", False): 6, ("zh", True): 2}
    assert all(u.extra["snr_db"] is None for u in rep.utterances if not u.noise)
    with pytest.raises(FileExistsError, match="already holds a corpus"):
        synthesize_corpus(tmp_path / "zh", 8, seed=1)
    with pytest.raises(ValueError, match="languages must be a non-empty subset"):
        synthesize_corpus(tmp_path / "x", 8, languages=("fr",))


def test_espeak_worker_is_deterministic_and_reports_bad_voices():
    reqs = [SynthRequest("turn on the lights", "en+m3", 160, 40),
            SynthRequest(voices.to_pinyin("打开微信"), "cmn-latn-pinyin+f2", 150, 60)]
    with SynthWorker() as w:
        rate, first = w.run(reqs)
        _, second = w.run(reqs)  # same process, same requests: eSpeak's state has moved on
    with SynthWorker() as w:
        _, fresh = w.run(reqs)
    assert [len(s.word_starts) for s in first] == [3, 4]  # "the" is joined to "on"; a syllable each
    first, second, fresh = ([s.samples for s in x] for x in (first, second, fresh))
    assert rate == 22050
    assert all(a.dtype == np.int16 and 0.3 * rate < len(a) < 3 * rate for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, fresh))  # fresh process: identical
    # eSpeak is not a pure function within one process (see espeak.py), hence one worker per
    # corpus; if this ever starts to hold, the worker could be shared
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    with SynthWorker() as w, pytest.raises(EspeakError, match="no voice 'xx-nope'"):
        w.run([SynthRequest("hello", "xx-nope")])


def test_mix_at_snr_hits_the_requested_ratio():
    rng = np.random.default_rng(0)
    speech = 0.3 * np.sin(np.arange(16000) / 5).astype(np.float32)
    for kind in noise.NOISE_TYPES:
        n = noise.make_noise(kind, 16000, rng, babble_pool=[speech[::-1].copy(), speech * 0.5])
        assert np.sqrt(np.mean(n**2)) == pytest.approx(1.0, rel=1e-4)
        mixed = noise.mix_at_snr(speech, n, 10.0)
        resid = mixed - speech
        snr = 10 * np.log10(np.mean(speech**2) / np.mean(resid**2))
        assert snr == pytest.approx(10.0, abs=0.01)


def test_pink_noise_falls_3db_per_octave_and_white_is_flat():
    rng = np.random.default_rng(1)
    def band_db(x, lo, hi):  # mean power per Hz in [lo, hi) Hz, 1 s at 16 kHz -> 1 Hz bins
        return 10 * np.log10(np.mean(np.abs(np.fft.rfft(x))[lo:hi] ** 2))
    pink, white = (noise.make_noise(k, 16000, rng) for k in ("pink", "white"))
    # 1/f power: per-Hz density halves per octave -> 3 octaves (250 -> 2000 Hz) = -9 dB
    assert band_db(pink, 250, 500) - band_db(pink, 2000, 4000) == pytest.approx(9.0, abs=1.5)
    assert band_db(white, 250, 500) - band_db(white, 2000, 4000) == pytest.approx(0.0, abs=1.0)


def test_domain_size_sentences_and_hotwords():
    vocab = domain.vocabulary()
    assert 180 <= len(vocab) <= 260
    rng = np.random.default_rng(0)
    for lang in domain.LANGUAGES:
        for _ in range(100):
            s = domain.sample_sentence(rng, lang)
            assert 3 <= len(s.words) <= 10 and set(s.words) <= vocab
            assert all(k in s.text for k in s.keywords)
            if lang == "mixed":
                assert len(voices.runs(s.words)) >= 2  # really code-switched
            hot = domain.sample_hotwords(rng, s.keywords)
            assert set(s.keywords) <= set(hot) and len(hot) == len(set(hot))
    assert domain.join_words(["把", "文件", "发", "给", "Priya"]) == "把文件发给 Priya"
    assert domain.join_words(["send", "to", "张伟", "now"]) == "send to 张伟 now"


def test_pinyin_of_polyphonic_domain_words():
    # characters with several readings that appear in the domain, read as meant here
    assert voices.to_pinyin("重启") == "chong2 qi3"
    assert voices.to_pinyin("音乐") == "yin1 yue4"
    assert voices.to_pinyin("导航") == "dao3 hang2"
    assert voices.to_pinyin("空调") == "kong1 tiao2"
    assert voices.to_pinyin("的") == "de5"
    sentence = domain.Sentence(("重启", "PyTorch", "服务器"), "mixed", ("PyTorch",))
    reqs = voices.requests_for(sentence, voices.Speaker("f2", 160, 50))
    assert [(r.text, r.voice) for r in reqs] == [
        ("chong2 qi3", "cmn-latn-pinyin+f2"), ("pie torch", "en+f2"),
        ("fu2 wu4 qi4", "cmn-latn-pinyin+f2")]
