"""From a domain sentence to eSpeak requests: speaker variety, pinyin for Mandarin, code-switching.

- A *speaker* is one eSpeak voice variant (``m3``, ``f2`` …) with a speaking rate and a pitch; it
  is applied to both languages of a sentence, so a code-switched sentence keeps one voice.
- Mandarin is spoken by the ``cmn-latn-pinyin`` voice fed pinyin with tone numbers from pypinyin
  (``da3 kai1``): given characters, eSpeak reads many of them wrongly.
- A code-switched sentence is cut into runs of Mandarin and English words; each run is one
  request in its language's voice, and the corpus builder concatenates the audio.
- A few English rare terms are respelled for eSpeak (:data:`SPOKEN`) so that they sound as
  people say them; the transcript keeps the usual spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pypinyin import Style, lazy_pinyin

from funrl.data.synth.domain import Sentence, is_zh
from funrl.data.synth.espeak import SynthRequest

VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4")
EN_VOICE = "en"
ZH_VOICE = "cmn-latn-pinyin"
RATE_RANGE = (140, 190)  # words per minute
PITCH_RANGE = (35, 65)  # eSpeak's 0..100 scale

# how eSpeak should say a few English rare terms (the transcript keeps the key)
SPOKEN = {
    "PyTorch": "pie torch",
    "Nginx": "engine x",
    "Postgres": "post gress",
    "PayPal": "pay pal",
    "Alipay": "ali pay",
    "Kubernetes": "koo ber net ees",
    "Redis": "red iss",
}


@dataclass(frozen=True)
class Speaker:
    variant: str
    rate: int
    pitch: int

    @property
    def name(self) -> str:
        return f"{self.variant}-r{self.rate}-p{self.pitch}"


def sample_speaker(rng: np.random.Generator) -> Speaker:
    return Speaker(
        variant=VARIANTS[int(rng.integers(len(VARIANTS)))],
        rate=int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
        pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
    )


def to_pinyin(hanzi: str) -> str:
    """``"打开微信"`` -> ``"da3 kai1 wei1 xin4"`` (neutral tone as 5, which eSpeak accepts)."""
    return " ".join(lazy_pinyin(hanzi, style=Style.TONE3, neutral_tone_with_five=True))


def runs(words: tuple[str, ...]) -> list[tuple[str, list[str]]]:
    """Split words into maximal runs of one language: ``[("zh", [...]), ("en", [...]), ...]``."""
    out: list[tuple[str, list[str]]] = []
    for w in words:
        lang = "zh" if is_zh(w) else "en"
        if out and out[-1][0] == lang:
            out[-1][1].append(w)
        else:
            out.append((lang, [w]))
    return out


def requests_for(sentence: Sentence, speaker: Speaker) -> list[SynthRequest]:
    """One eSpeak request per language run of ``sentence``, all in ``speaker``'s voice."""
    return [req for req, _ in requests_with_units(sentence, speaker)]


def requests_with_units(sentence: Sentence, speaker: Speaker) -> list[tuple[SynthRequest, list]]:
    """:func:`requests_for` with, per request, the timing units it speaks: ``(unit, first char,
    end char)`` spans of the request's text. A unit is an English word of the transcript (its
    spoken form may be several eSpeak words: ``PyTorch`` is "pie torch") or one Mandarin
    character (one pinyin syllable)."""
    out = []
    for lang, words in runs(sentence.words):
        if lang == "zh":
            units = [c for w in words for c in w]
            spoken = to_pinyin("".join(words)).split(" ")  # the phrase's readings, a syllable a character
            if len(spoken) != len(units):
                raise ValueError(f"pinyin of {''.join(words)!r} is not one syllable per character: {spoken}")
            voice = f"{ZH_VOICE}+{speaker.variant}"
        else:
            units, spoken = list(words), [SPOKEN.get(w, w) for w in words]
            voice = f"{EN_VOICE}+{speaker.variant}"
        spans, pos = [], 0
        for unit, said in zip(units, spoken):
            spans.append((unit, pos, pos + len(said)))
            pos += len(said) + 1
        out.append((SynthRequest(text=" ".join(spoken), voice=voice, rate=speaker.rate,
                                 pitch=speaker.pitch), spans))
    return out
