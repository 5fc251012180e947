"""Build a synthetic speech corpus: 16 kHz WAVs, ``manifest.jsonl`` and train/dev/test splits.

The corpus is a pure function of its arguments: one ``numpy`` generator seeded with ``seed``
plans every utterance up front (language, sentence, speaker, hotwords, noise, split), eSpeak runs
the plan in order in a fresh worker process (see ``espeak.py`` on why), and the noise of item
``i`` comes from its own generator seeded ``(seed, i)``. Same arguments, byte-identical files.
Each speech row carries ``words``: every word's (Mandarin: character's) start and end in seconds,
from eSpeak's word events (:mod:`funrl.data.synth.timing`); a noise row has ``words: []``.

Splits are disjoint by utterance, and by default also by *text*: all utterances of one sentence
go to the same split, so test sentences are never heard in training (the vocabulary and the
keywords are shared; the word combinations are new). The split is stratified: each language,
and the pure-noise clips, are divided by the ratios on their own. Split sizes hit the ratios
(rounded per stratum) exactly when sentences are distinct; with many repeats dev and test can
come out a little smaller than their ratios, never larger.

Levels: eSpeak's speech peaks near -3 dBFS; a noisy mix whose peak would clip is scaled down to a
0.99 peak (the SNR is unchanged). Pure-noise clips last 1-4 s at -45..-20 dBFS RMS.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import soxr

from funrl.data.manifest import Utterance, write_manifest
from funrl.data.synth import domain, noise, voices
from funrl.data.synth.espeak import SynthWorker
from funrl.data.synth.hotword_list import write_hotword_list
from funrl.data.synth.timing import utterance_timings

SAMPLE_RATE = 16000
SPLITS = ("train", "dev", "test")
NOISE_SECONDS = (1.0, 4.0)
NOISE_DBFS = (-45.0, -20.0)
PEAK = 0.99
_OURS = re.compile(r"utt\d{6}\.wav")


@dataclass
class _Item:
    """One planned utterance."""

    index: int
    language: str | None
    sentence: domain.Sentence | None  # None for a pure-noise clip
    speaker: voices.Speaker | None
    hotwords: list[str]
    noise_type: str | None = None
    snr_db: float | None = None
    seconds: float | None = None  # pure-noise clips
    dbfs: float | None = None
    split: str = "train"

    @property
    def id(self) -> str:
        return f"utt{self.index:06d}"


@dataclass
class CorpusReport:
    out_dir: Path
    utterances: list[Utterance]
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        return sum(u.duration or 0.0 for u in self.utterances) / 3600.0


def _plan(n: int, rng: np.random.Generator, languages: Sequence[str], noise_frac: float,
          noisy_frac: float, snr: tuple[float, float], noise_types: Sequence[str]) -> list[_Item]:
    n_noise = int(round(n * noise_frac))
    noise_lang = languages[0] if len(languages) == 1 else None
    items: list[_Item] = []
    for _ in range(n - n_noise):
        lang = languages[int(rng.integers(len(languages)))]
        sent = domain.sample_sentence(rng, lang)
        item = _Item(0, lang, sent, voices.sample_speaker(rng),
                     domain.sample_hotwords(rng, sent.keywords))
        if rng.random() < noisy_frac:
            item.noise_type = noise_types[int(rng.integers(len(noise_types)))]
            item.snr_db = round(float(rng.uniform(*snr)), 1)
        items.append(item)
    for _ in range(n_noise):
        items.append(_Item(0, noise_lang, None, None, domain.sample_hotwords(rng, ()),
                           noise_type=noise_types[int(rng.integers(len(noise_types)))],
                           seconds=round(float(rng.uniform(*NOISE_SECONDS)), 2),
                           dbfs=round(float(rng.uniform(*NOISE_DBFS)), 1)))
    order = rng.permutation(len(items))
    items = [items[int(i)] for i in order]
    for i, item in enumerate(items):
        item.index = i
    return items


def _assign_splits(items: list[_Item], ratios: tuple[float, float, float],
                   rng: np.random.Generator, disjoint_text: bool) -> None:
    """Set ``item.split``, stratified by language (and noise clips apart), so that each split
    gets its share of every kind; see the module docstring for the text policy."""
    strata: dict[str, list[_Item]] = {}
    for it in items:
        strata.setdefault("noise" if it.sentence is None else it.language, []).append(it)
    for kind in sorted(strata):
        members = strata[kind]
        groups: dict[str, list[_Item]] = {}
        for it in members:
            key = it.sentence.text if (disjoint_text and it.sentence is not None) else it.id
            groups.setdefault(key, []).append(it)
        total = sum(ratios)
        targets = {s: int(round(len(members) * r / total)) for s, r in zip(SPLITS, ratios)}
        counts: Counter = Counter()
        keys = list(groups)
        for k in (keys[int(i)] for i in rng.permutation(len(keys))):
            g = groups[k]
            split = next((s for s in ("test", "dev") if counts[s] + len(g) <= targets[s]), "train")
            counts[split] += len(g)
            for it in g:
                it.split = split


def _render(item: _Item, segments: list[np.ndarray], espeak_rate: int, seed: int,
            babble: Sequence[np.ndarray]) -> np.ndarray:
    """float32 [n] at 16 kHz for one planned item."""
    rng = np.random.default_rng([seed, item.index])
    if item.sentence is None:
        n = int(round(item.seconds * SAMPLE_RATE))
        return noise.at_dbfs(noise.make_noise(item.noise_type, n, rng, babble), item.dbfs)
    pcm = np.concatenate(segments).astype(np.float32) / 32768.0
    wav = soxr.resample(pcm, espeak_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    if item.noise_type is not None:
        wav = noise.mix_at_snr(wav, noise.make_noise(item.noise_type, len(wav), rng, babble),
                               item.snr_db)
    peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
    return wav * (PEAK / peak) if peak > PEAK else wav


def _utterance(item: _Item, path: Path, n_samples: int, words: list) -> Utterance:
    s = item.sentence
    return Utterance(
        id=item.id, audio=str(path.resolve()), text=s.text if s else "", language=item.language,
        keywords=list(s.keywords) if s else [], hotwords=item.hotwords,
        duration=round(n_samples / SAMPLE_RATE, 4), noise=s is None, words=words,
        extra={"speaker": item.speaker.name if item.speaker else None,
               "noise_type": item.noise_type, "snr_db": item.snr_db},
    )


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if (out / "manifest.jsonl").exists():
        if not overwrite:
            raise FileExistsError(f"{out} already holds a corpus (manifest.jsonl); choose another "
                                  "--out or pass --overwrite")
        for p in (out / "wav").glob("utt*.wav"):
            if _OURS.fullmatch(p.name):
                p.unlink()
    (out / "wav").mkdir(parents=True, exist_ok=True)


def synthesize_corpus(out_dir: str | Path, n: int, seed: int = 0,
                      languages: Sequence[str] = domain.LANGUAGES, noise_frac: float = 0.1,
                      snr: tuple[float, float] = (5.0, 30.0), noisy_frac: float = 0.5,
                      noise_types: Sequence[str] = noise.NOISE_TYPES,
                      split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                      disjoint_text: bool = True, babble_size: int = 8, chunk: int = 64,
                      overwrite: bool = False, hotword_distractors: int = 1200) -> CorpusReport:
    """Write ``n`` utterances (``noise_frac`` of them pure noise; ``noisy_frac`` of the speech
    mixed with noise at an SNR uniform in ``snr`` dB) to ``out_dir``, and ``hotwords.txt``: the rare
    terms and ``hotword_distractors`` sound-alike distractors (:mod:`funrl.data.synth.hotword_list`)."""
    _validate(n, languages, noise_frac, noisy_frac, snr, noise_types, split_ratios)
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    rng = np.random.default_rng(seed)
    items = _plan(n, rng, list(languages), noise_frac, noisy_frac, snr, list(noise_types))
    _assign_splits(items, split_ratios, rng, disjoint_text)
    babble_sents = [(domain.sample_sentence(rng, languages[i % len(languages)]),
                     voices.sample_speaker(rng)) for i in range(babble_size)]
    utts: list[Utterance] = []
    with SynthWorker() as worker:
        rate, pool = _synth_babble(worker, babble_sents)
        chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
        if chunks:
            worker.submit(_requests(chunks[0]))
        for k, part in enumerate(chunks):
            rate, audio = worker.result()
            if k + 1 < len(chunks):
                worker.submit(_requests(chunks[k + 1]))  # overlaps eSpeak with our work below
            segs = iter(audio)
            for item in part:
                units = [u for _, u in voices.requests_with_units(item.sentence, item.speaker)] if item.sentence else []
                speech = [next(segs) for _ in units]
                wav = _render(item, [sp.samples for sp in speech], rate, seed, pool)
                words = utterance_timings([(u, sp.word_starts, sp.samples) for u, sp in zip(units, speech)], rate)
                path = out / "wav" / f"{item.id}.wav"
                _write_wav(path, wav)
                utts.append(_utterance(item, path, len(wav), words))
    write_manifest(out / "manifest.jsonl", utts)
    by_split = {s: [u for u, it in zip(utts, items) if it.split == s] for s in SPLITS}
    for s, rows in by_split.items():
        write_manifest(out / f"{s}.jsonl", rows)
    write_hotword_list(out / "hotwords.txt", hotword_distractors, seed)
    return CorpusReport(out, utts, {s: len(r) for s, r in by_split.items()})


def _write_wav(path: Path, wav: np.ndarray) -> None:
    # encode in memory: soundfile's close() on a real file calls sf_write_sync (an fsync per
    # file), which made writing slower than everything else together
    buf = io.BytesIO()
    sf.write(buf, wav, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    path.write_bytes(buf.getvalue())


def _requests(items: Sequence[_Item]) -> list:
    return [r for it in items if it.sentence is not None
            for r in voices.requests_for(it.sentence, it.speaker)]


def _synth_babble(worker: SynthWorker, sents) -> tuple[int, list[np.ndarray]]:
    reqs, sizes = [], []
    for sent, spk in sents:
        rs = voices.requests_for(sent, spk)
        reqs += rs
        sizes.append(len(rs))
    rate, audio = worker.run(reqs)
    pool, it = [], iter(audio)
    for k in sizes:
        pcm = np.concatenate([next(it).samples for _ in range(k)]).astype(np.float32) / 32768.0
        pool.append(soxr.resample(pcm, rate, SAMPLE_RATE, quality="HQ").astype(np.float32))
    return rate, pool


def _validate(n, languages, noise_frac, noisy_frac, snr, noise_types, split_ratios) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ValueError(msg)

    need(isinstance(n, int) and n > 0, f"n must be a positive integer, got {n!r}")
    need(len(languages) > 0 and all(lang in domain.LANGUAGES for lang in languages),
         f"languages must be a non-empty subset of {', '.join(domain.LANGUAGES)}, "
         f"got {languages!r}")
    need(0.0 <= noise_frac <= 1.0, f"noise_frac must be in [0, 1], got {noise_frac}")
    need(0.0 <= noisy_frac <= 1.0, f"noisy_frac must be in [0, 1], got {noisy_frac}")
    need(len(snr) == 2 and snr[0] <= snr[1],
         f"snr must be (low, high) dB with low <= high, got {snr}")
    need(len(noise_types) > 0 and all(t in noise.NOISE_TYPES for t in noise_types),
         f"noise_types must be a non-empty subset of {', '.join(noise.NOISE_TYPES)}, "
         f"got {noise_types!r}")
    need(len(split_ratios) == 3 and min(split_ratios) >= 0 and sum(split_ratios) > 0,
         f"split_ratios must be three non-negative numbers (train, dev, test), got {split_ratios}")
