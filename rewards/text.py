"""Text rules shared by the rewards and by evaluation: one definition of WER in the project.

- :func:`normalize` — Unicode width folding (NFKC: full-width ``ＡＢＣ，`` → ``ABC,``), lower case,
  punctuation (ASCII, full-width and CJK, i.e. Unicode category ``P``) replaced by a space, except
  an apostrophe inside a word, which is dropped (``don't`` → ``dont``), and whitespace collapsed.
  Each step can be turned off with :class:`TextNorm`.
- :func:`units` — the error-rate units of normalised text: every character of an unspaced script
  (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) is one unit; every other whitespace-free
  run is one unit. Mandarin is therefore scored per character (CER), English per word (WER) and
  code-switched text per CJK character plus per Latin word (the "mixed error rate", MER).
- :func:`error_counts` — substitutions, deletions, insertions and hits per pair, exactly as
  jiwer counts them (same alignment engine, see :func:`counts_from_units`). :class:`ErrorCounts`
  adds up, so a corpus error rate is ``sum(counts).rate`` (total errors / total reference
  units), not a mean of per-sample rates.
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
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import regex
from rapidfuzz.distance import Levenshtein

# Scripts written without spaces between words: one character is one error-rate unit.
UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_CORE = rf"[^\s\p{{P}}{UNSPACED}]"  # a character of a spaced-script word
_INNER_APOSTROPHE = regex.compile(rf"(?<={_CORE})['’](?={_CORE})")
_PUNCT = regex.compile(r"\p{P}+")
_SPACE = regex.compile(r"\s+")
_UNIT = regex.compile(rf"[{UNSPACED}]|[^\s{UNSPACED}]+")
_UNSPACED_RUN = regex.compile(rf"[{UNSPACED}]+")
# The raw tokens that become units, found with their offsets (TextNorm.spans).
_RAW_TOKEN = regex.compile(rf"[{UNSPACED}]|{_CORE}+(?:['’]{_CORE}+)*")
_HAN = regex.compile(r"\p{Han}")
_LATIN = regex.compile(r"\p{Latin}")
_LETTER = regex.compile(r"\p{L}")
_CACHE_SIZE = 1 << 16
_UNIT_CACHES: dict[tuple[bool, bool, bool], Callable[[str], tuple[str, ...]]] = {}


@dataclass(frozen=True)
class TextNorm:
    """Which normalisation steps run; the defaults are the project's evaluation setting.

    Units are cached per setting (an LRU of 65k texts), so the rewards of one batch, which all
    tokenise the same references and completions, do the work once.
    """

    lowercase: bool = True  # "Hello" == "hello"
    punctuation: bool = True  # drop ASCII, full-width and CJK punctuation
    width: bool = True  # NFKC: full-width letters, digits and punctuation -> ASCII
    # the cached unit function shared by every TextNorm with these settings; set in __post_init__
    unit_tuple: Callable[[str], tuple[str, ...]] = field(
        init=False, repr=False, compare=False, default=None  # type: ignore[arg-type]
    )

    def __post_init__(self) -> None:
        key = (self.lowercase, self.punctuation, self.width)
        if key not in _UNIT_CACHES:
            _UNIT_CACHES[key] = lru_cache(maxsize=_CACHE_SIZE)(self._units)
        object.__setattr__(self, "unit_tuple", _UNIT_CACHES[key])

    def normalize(self, text: str) -> str:
        if self.width:
            text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.lower()
        if self.punctuation:
            text = _PUNCT.sub(" ", _INNER_APOSTROPHE.sub("", text))
        return _SPACE.sub(" ", text).strip()

    def _fold(self, text: str) -> str:
        if self.width and not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        return text.lower() if self.lowercase else text

    def _find(self, text: str) -> list[str]:
        """Units of already folded text: whitespace-split, then unspaced runs cut per character.

        The same units as ``_UNIT.findall(self.normalize(text))`` (tested), in about half the time.
        """
        if self.punctuation:
            if "'" in text or "’" in text:
                text = _INNER_APOSTROPHE.sub("", text)
            text = _PUNCT.sub(" ", text)
        if text.isascii():
            return text.split()
        out: list[str] = []
        for tok in text.split():
            if tok.isascii():
                out.append(tok)
            elif _UNSPACED_RUN.fullmatch(tok):
                out.extend(tok)  # one unit per character
            else:
                out.extend(_UNIT.findall(tok))
        return out

    def _units(self, text: str) -> tuple[str, ...]:
        return tuple(self._find(self._fold(text)))

    def units(self, text: str) -> list[str]:
        return list(self.unit_tuple(text))

    def spans(self, text: str) -> list[tuple[str, int, int]]:
        """``(unit, start, end)`` with offsets into the *raw* text; same units as :meth:`units`."""
        folded = self._fold(text)
        pattern = _RAW_TOKEN if self.punctuation else _UNIT
        if len(folded) == len(text) and (not self.width or unicodedata.is_normalized("NFKC", text)):
            # folding kept every character in place, so offsets carry over
            return [(u, m.start(), m.end()) for m in pattern.finditer(folded) for u in self._find(m.group())]
        out = []
        for m in pattern.finditer(text):  # rare: NFKC or lower() changed lengths ("①", "ﬁ", "İ")
            for u in self._units(m.group()):
                out.append((u, m.start(), m.end()))
        return out


def clear_caches() -> None:
    """Empty the unit caches (benchmarks time cold calls)."""
    for cache in _UNIT_CACHES.values():
        cache.cache_clear()  # type: ignore[attr-defined]


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


def _pair_counts(ref: Sequence[str], hyp: Sequence[str]) -> ErrorCounts:
    s = d = i = 0
    for tag, _, _ in Levenshtein.editops(ref, hyp).as_list():  # only the errors
        if tag == "replace":
            s += 1
        elif tag == "delete":
            d += 1
        else:
            i += 1
    return ErrorCounts(s, d, i, len(ref) - s - d)


def counts_from_units(ref_units: Sequence[Sequence[str]], hyp_units: Sequence[Sequence[str]]) -> list[ErrorCounts]:
    """Per-pair :class:`ErrorCounts` of pre-computed units.

    This is jiwer's ``process_words`` count without its per-pair alignment objects: the units are
    aligned by ``rapidfuzz.distance.Levenshtein`` (jiwer's own engine) and its edit operations
    counted. The counts equal jiwer's exactly (tests/rewards/test_text.py checks thousands of
    pairs against ``jiwer.process_words``) at several times its speed, which the accuracy
    reward's budget needs (bench/rewards.py).
    """
    if len(ref_units) != len(hyp_units):
        raise ValueError(f"{len(ref_units)} references but {len(hyp_units)} hypotheses")
    out = []
    for r, h in zip(ref_units, hyp_units):
        if not r:  # empty reference: every hypothesis unit is an insertion
            out.append(ErrorCounts(insertions=len(h)))
        elif len(r) == len(h) and tuple(r) == tuple(h):
            out.append(ErrorCounts(hits=len(r)))  # exact match: no alignment needed
        else:
            out.append(_pair_counts(r, h))
    return out


def error_counts(
    references: Sequence[str], hypotheses: Sequence[str], norm: TextNorm = DEFAULT_NORM
) -> list[ErrorCounts]:
    """Per-pair :class:`ErrorCounts` after :func:`normalize` and :func:`units`.

    >>> [c.rate for c in error_counts(["the cat sat", ""], ["the bat sat down", "uh"])]
    [0.6666666666666666, 1.0]
    """
    return counts_from_units([norm.unit_tuple(r) for r in references], [norm.unit_tuple(h) for h in hypotheses])


def error_rate(references: Sequence[str], hypotheses: Sequence[str], norm: TextNorm = DEFAULT_NORM) -> float:
    """Corpus error rate: total errors over total reference units (WER / CER / MER).

    >>> error_rate(["a b", "c d e f"], ["a x", "c d e f"])  # 1 error / 6 units
    0.16666666666666666
    """
    return sum(error_counts(references, hypotheses, norm), ErrorCounts()).rate


# ----------------------------------------------------------------------------- language


def script_shares(text: str, norm: TextNorm = DEFAULT_NORM) -> tuple[int, int, int]:
    """``(han, latin, other)``: Han units, units with a Latin letter, units with other letters.

    Units without letters (digits, symbols) count for nothing.

    >>> script_shares("我们 meet 3d ビデオ café 2024")
    (2, 3, 3)
    """
    han = latin = other = 0
    for u in norm.unit_tuple(text):
        if u.isascii():
            latin += u.lower() != u.upper()  # has an ASCII letter
        elif len(u) == 1 and "\u4e00" <= u <= "\u9fff" or _HAN.fullmatch(u):  # CJK Unified block, then the rest
            han += 1
        elif _LATIN.search(u):
            latin += 1
        elif _LETTER.search(u):
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
    return " ".join(norm.unit_tuple(term))


def match_keywords(text: str, terms: Iterable[str], norm: TextNorm = DEFAULT_NORM) -> list[str]:
    """The terms (in the given order, once each) that occur in ``text`` on unit boundaries.

    Matching is after normalisation, so case and punctuation do not matter; a Latin term must
    match whole words ("cat" is not in "category"); a CJK term matches its characters in a row.

    >>> match_keywords("Ask Dr. Lee about 北京大学 today", ["dr lee", "LEE", "京大", "Lee about", "cat"])
    ['dr lee', 'LEE', '京大', 'Lee about']
    """
    hay = " " + " ".join(norm.unit_tuple(text)) + " "
    found = []
    seen = set()
    for t in terms:
        key = _term_key(t, norm)
        if key and t not in seen and f" {key} " in hay:
            found.append(t)
            seen.add(t)
    return found
