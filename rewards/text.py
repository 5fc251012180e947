"""Text rules shared by the rewards and by evaluation: one definition of WER in the project.

- :func:`normalize` — Unicode width folding (NFKC: full-width ``ＡＢＣ，`` → ``ABC,``), lower case,
  punctuation (ASCII, full-width and CJK, i.e. Unicode category ``P``) replaced by a space, except
  an apostrophe inside a word, which is dropped (``don't`` → ``dont``), and whitespace collapsed.
  Each step can be turned off with :class:`TextNorm`.
- :func:`units` — the error-rate units of normalised text: every character of an unspaced script
  (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) is one unit; every other whitespace-free
  run is one unit. Mandarin is therefore scored per character (CER), English per word (WER) and
  code-switched text per CJK character plus per Latin word (the "mixed error rate", MER).
- :func:`error_counts` — substitutions, deletions, insertions and hits per pair, computed with
  jiwer in one call per batch; :class:`ErrorCounts` adds up, so a corpus error rate is
  ``sum(counts).rate`` (total errors / total reference units), not a mean of per-sample rates.
- :func:`detect_language` — ``'en'``, ``'zh'``, ``'mixed'``, ``'other'`` or ``None`` from the
  share of Han characters and Latin words among the units.
- :func:`match_keywords` — which terms occur in a text, on unit boundaries, after normalisation
  (case-insensitive, multi-word, CJK).

An empty reference has no error rate in the usual sense; :attr:`ErrorCounts.rate` defines it as
0.0 when the hypothesis is empty too and 1.0 otherwise ("everything said is wrong").

>>> units("Hello, World! 我们用 GPT-4 吧。")
['hello', 'world', '我', '们', '用', 'gpt', '4', '吧']
>>> c = error_counts(["我爱北京"], ["我爱南京"])[0]
>>> (c.substitutions, c.deletions, c.insertions, c.n, c.rate)
(1, 0, 0, 4, 0.25)
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import jiwer
import regex

# Scripts written without spaces between words: one character is one error-rate unit.
UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_INNER_APOSTROPHE = regex.compile(r"(?<=[\p{L}\p{N}])['’](?=[\p{L}\p{N}])")
_PUNCT = regex.compile(r"\p{P}+")
_SPACE = regex.compile(r"\s+")
_UNIT = regex.compile(rf"[{UNSPACED}]|[^\s{UNSPACED}]+")
# The same units found in raw (un-normalised) text, with their character offsets.
_RAW_UNIT = regex.compile(
    rf"[{UNSPACED}]|(?:[^\s\p{{P}}{UNSPACED}]|(?<=[\p{{L}}\p{{N}}])['’](?=[\p{{L}}\p{{N}}]))+"
)
_RAW_UNIT_KEEP_PUNCT = regex.compile(rf"[{UNSPACED}]|[^\s{UNSPACED}]+")
_HAN = regex.compile(r"\p{Han}")
_LATIN_WORD = regex.compile(r"^\p{Latin}")


@dataclass(frozen=True)
class TextNorm:
    """Which normalisation steps run; the defaults are the project's evaluation setting."""

    lowercase: bool = True  # "Hello" == "hello"
    punctuation: bool = True  # drop ASCII, full-width and CJK punctuation
    width: bool = True  # NFKC: full-width letters, digits and punctuation -> ASCII

    def normalize(self, text: str) -> str:
        if self.width:
            text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.lower()
        if self.punctuation:
            text = _PUNCT.sub(" ", _INNER_APOSTROPHE.sub("", text))
        return _SPACE.sub(" ", text).strip()

    def units(self, text: str) -> list[str]:
        return _UNIT.findall(self.normalize(text))

    def spans(self, text: str) -> list[tuple[str, int, int]]:
        """``(unit, start, end)`` with offsets into the *raw* text; same units as :meth:`units`."""
        pattern = _RAW_UNIT if self.punctuation else _RAW_UNIT_KEEP_PUNCT
        out = []
        for m in pattern.finditer(text):
            for u in self.units(m.group()):  # NFKC may split one raw token (rare: "①…")
                out.append((u, m.start(), m.end()))
        return out


DEFAULT_NORM = TextNorm()


def normalize(text: str, norm: TextNorm = DEFAULT_NORM) -> str:
    """Normalised text (see the module docstring).

    >>> normalize("  Ｈｅｌｌｏ，  World! Don't  ")
    'hello world dont'
    """
    return norm.normalize(text)


def units(text: str, norm: TextNorm = DEFAULT_NORM) -> list[str]:
    """Error-rate units: one per unspaced-script character, one per other word.

    >>> units("我们 meeting 吧")
    ['我', '们', 'meeting', '吧']
    """
    return norm.units(text)


@dataclass(frozen=True)
class ErrorCounts:
    """Edit counts of one pair (or, summed, of a corpus). ``n`` = reference units."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    hits: int = 0

    @property
    def n(self) -> int:
        return self.substitutions + self.deletions + self.hits

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / n; for an empty reference 0.0 if nothing was said, else 1.0."""
        if self.n == 0:
            return 0.0 if self.insertions == 0 else 1.0
        return self.errors / self.n

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.hits + other.hits,
        )

    def __radd__(self, other: object) -> "ErrorCounts":
        if other == 0:  # sum() starts from 0
            return self
        return NotImplemented


class _PreSplit(jiwer.AbstractTransform):
    """jiwer transform for strings that are already units joined by single spaces."""

    def process_string(self, s: str) -> list[list[str]]:
        return [s.split(" ") if s else []]

    def process_list(self, inp: list[str]) -> list[list[str]]:
        return [s.split(" ") if s else [] for s in inp]


_PRESPLIT = _PreSplit()


def counts_from_units(ref_units: Sequence[Sequence[str]], hyp_units: Sequence[Sequence[str]]) -> list[ErrorCounts]:
    """Per-pair :class:`ErrorCounts` of pre-computed units, with one jiwer call for the batch."""
    if len(ref_units) != len(hyp_units):
        raise ValueError(f"{len(ref_units)} references but {len(hyp_units)} hypotheses")
    out: list[ErrorCounts | None] = [None] * len(ref_units)
    idx = []
    for i, (r, h) in enumerate(zip(ref_units, hyp_units)):
        if r:
            idx.append(i)
        else:  # jiwer refuses empty references: every hypothesis unit is an insertion
            out[i] = ErrorCounts(insertions=len(h))
    if idx:
        refs = [" ".join(ref_units[i]) for i in idx]
        hyps = [" ".join(hyp_units[i]) for i in idx]
        res = jiwer.process_words(refs, hyps, _PRESPLIT, _PRESPLIT)
        for i, chunks in zip(idx, res.alignments):
            s = d = ins = h = 0
            for c in chunks:
                if c.type == "equal":
                    h += c.ref_end_idx - c.ref_start_idx
                elif c.type == "substitute":
                    s += c.ref_end_idx - c.ref_start_idx
                elif c.type == "delete":
                    d += c.ref_end_idx - c.ref_start_idx
                else:
                    ins += c.hyp_end_idx - c.hyp_start_idx
            out[i] = ErrorCounts(s, d, ins, h)
    return out  # type: ignore[return-value]


def error_counts(
    references: Sequence[str], hypotheses: Sequence[str], norm: TextNorm = DEFAULT_NORM
) -> list[ErrorCounts]:
    """Per-pair :class:`ErrorCounts` after :func:`normalize` and :func:`units`.

    >>> [c.rate for c in error_counts(["the cat sat", ""], ["the bat sat down", "uh"])]
    [0.6666666666666666, 1.0]
    """
    return counts_from_units([norm.units(r) for r in references], [norm.units(h) for h in hypotheses])


def error_rate(references: Sequence[str], hypotheses: Sequence[str], norm: TextNorm = DEFAULT_NORM) -> float:
    """Corpus error rate: total errors over total reference units (WER / CER / MER).

    >>> error_rate(["a b", "c d e f"], ["a x", "c d e f"])  # 1 error / 6 units
    0.16666666666666666
    """
    return sum(error_counts(references, hypotheses, norm), ErrorCounts()).rate


# ----------------------------------------------------------------------------- language


def script_shares(text: str, norm: TextNorm = DEFAULT_NORM) -> tuple[int, int, int]:
    """``(han, latin, other)`` unit counts; digits and symbols count for nothing."""
    han = latin = other = 0
    for u in norm.units(text):
        if _HAN.match(u):
            han += 1
        elif _LATIN_WORD.match(u):
            latin += 1
        elif any(ch.isalpha() for ch in u):
            other += 1
    return han, latin, other


def detect_language(text: str, mixed_share: float = 0.1, norm: TextNorm = DEFAULT_NORM) -> str | None:
    """``'zh'``, ``'en'``, ``'mixed'``, ``'other'`` or ``None`` (no letters) by script share.

    Shares are over units (Han characters, Latin words, other lettered units). The text is
    ``'mixed'`` when Han and Latin each hold at least ``mixed_share`` of them; ``'other'`` when
    neither Han nor Latin is the largest group (kana, Cyrillic, …).

    >>> [detect_language(t) for t in ["hello there", "你好世界", "我们开个 meeting 吧", "привет", "123"]]
    ['en', 'zh', 'mixed', 'other', None]
    """
    han, latin, other = script_shares(text, norm)
    total = han + latin + other
    if total == 0:
        return None
    if other > max(han, latin):
        return "other"
    if han / total >= mixed_share and latin / total >= mixed_share:
        return "mixed"
    return "zh" if han >= latin else "en"


# ----------------------------------------------------------------------------- keywords


@lru_cache(maxsize=65536)
def _term_key(term: str, norm: TextNorm) -> str:
    return " ".join(norm.units(term))


def match_keywords(text: str, terms: Iterable[str], norm: TextNorm = DEFAULT_NORM) -> list[str]:
    """The terms (in the given order, once each) that occur in ``text`` on unit boundaries.

    Matching is after normalisation, so case and punctuation do not matter; a Latin term must
    match whole words ("cat" is not in "category"); a CJK term matches its characters in a row.

    >>> match_keywords("Ask Dr. Lee about 北京大学 today", ["dr lee", "LEE", "京大", "Lee about", "cat"])
    ['dr lee', 'LEE', '京大', 'Lee about']
    """
    hay = " " + " ".join(norm.units(text)) + " "
    found = []
    seen = set()
    for t in terms:
        key = _term_key(t, norm)
        if key and t not in seen and f" {key} " in hay:
            found.append(t)
            seen.add(t)
    return found
