"""R3, hallucination: a penalty proportional to the length of hallucinated text (report §4.2.4.3).

Hallucinated text is found with regular expressions (the ``regex`` package) over the
completion's error-rate units (:func:`funrl.rewards.text.units`: CJK characters and words, after
normalisation), by four rules; each flags units:

- ``noise``: any output on a sample whose reference is empty (pure noise): every unit.
- ``loop``: an n-gram of 1..``loop_max_n`` units repeated ``loop_min_repeats`` or more times in a
  row. The first copy is legitimate, and so are as many copies as the reference itself repeats
  that n-gram in a row ("no no no"); the rest are flagged.
- ``phrase``: a filler or outro phrase ("thank you for watching", "请订阅", … see
  :data:`DEFAULT_PHRASES`) beyond the number of times the reference says it.
- ``length``: the units past ``floor(length_ratio × reference units)``.
- ``unheard``: on a streaming-mode sample (one with ``stream_boundary_s``, see
  :mod:`funrl.streaming.training`), the length rule with ``stream_length_ratio`` (1.0) instead: the
  reference is what was spoken entirely by the boundary, so every unit past its length is a word
  the model has not heard yet (the streaming failure mode), not just those past 1.5×.

The penalty is ``−min(max_penalty, per_unit × flagged units)`` (a unit flagged by two rules
counts once); 0.0 when nothing is flagged, never ``None``. The report gives no scale; with the
defaults ten hallucinated words (or characters) cost as much as the language penalty, −1.

For logging, :meth:`Hallucination.spans` returns the matched spans (character offsets into the
completion, the rule, the text), and each call keeps its batch's spans in ``last_spans``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence

import regex

from funrl.rewards.registry import register
from funrl.rewards.text import TextNorm

DEFAULT_PHRASES: tuple[str, ...] = (
    # English outros and caption credits that speech models emit on silence or music
    "thank you for watching", "thanks for watching", "thank you for listening",
    "thanks for listening", "please subscribe", "subscribe to my channel", "like and subscribe",
    "don't forget to subscribe", "see you in the next video", "see you next time",
    "subtitles by", "captions by", "transcribed by", "translated by", "amara.org",
    # Mandarin equivalents
    "谢谢观看", "感谢观看", "谢谢收看", "感谢收看", "谢谢收听", "感谢收听", "请订阅", "订阅我的频道",
    "点赞订阅", "请不吝点赞", "字幕由", "字幕志愿者", "明镜与点点栏目", "下期再见", "我们下期再见",
)


class Span(NamedTuple):
    start: int  # character offsets into the completion
    end: int
    rule: str  # "noise" | "loop" | "phrase" | "length" | "unheard"
    text: str


@register("hallucination")
class Hallucination:
    """``−min(max_penalty, per_unit × hallucinated units)`` per completion.

    >>> h = Hallucination()
    >>> refs = ["", "hello", "no no no", "the end"]
    >>> outs = ["Thank you.", "hello hello hello hello", "no no no", "the end thanks for watching"]
    >>> [round(r, 6) for r in h(outs, references=refs, samples=[{}] * 4)]
    [-0.2, -0.3, 0.0, -0.3]
    >>> h.spans(["hello hello hello hello"], ["hello"])[0]
    [Span(start=6, end=23, rule='loop', text='hello hello hello')]
    """

    def __init__(
        self,
        per_unit: float = 0.1,
        max_penalty: Optional[float] = 1.0,
        loop_max_n: int = 8,
        loop_min_repeats: int = 3,
        phrases: Optional[Sequence[str]] = None,
        extra_phrases: Sequence[str] = (),
        length_ratio: Optional[float] = 1.5,
        stream_length_ratio: Optional[float] = 1.0,
        lowercase: bool = True,
        punctuation: bool = True,
        width: bool = True,
    ):
        if loop_max_n < 1 or loop_min_repeats < 2:
            raise ValueError("loop_max_n must be >= 1 and loop_min_repeats >= 2")
        self.per_unit, self.max_penalty, self.length_ratio = per_unit, max_penalty, length_ratio
        self.stream_length_ratio = stream_length_ratio
        self._max_n, self._min_repeats = loop_max_n, loop_min_repeats
        self.norm = TextNorm(lowercase=lowercase, punctuation=punctuation, width=width)
        # Units are joined as " u1 u2 …": every unit starts with a space, so patterns align on units.
        # the shortest n-gram (lazy) followed by at least k-1 more copies of itself, ending on a unit
        gram = rf"(?P<g>(?: [^ ]+){{1,{loop_max_n}}}?)"
        self._loop = regex.compile(rf"{gram}(?P=g){{{loop_min_repeats - 1},}}(?= |$)")
        listed = [*(DEFAULT_PHRASES if phrases is None else phrases), *extra_phrases]
        keys = sorted({" ".join(self.norm.units(p)) for p in listed} - {""}, key=len, reverse=True)
        alternatives = "|".join(regex.escape(k) for k in keys)  # longest first
        self._phrase = regex.compile(f" (?:{alternatives})(?= |$)") if keys else None
        self.last_spans: list[list[Span]] = []

    # ------------------------------------------------------------------ rules

    def _may_loop(self, units: tuple[str, ...]) -> bool:
        """Cheap necessary condition for a loop: some unit sits at p, p+n, …, p+(k−1)n for an
        n <= ``loop_max_n`` (k = ``loop_min_repeats``). Saves the backtracking regex on most texts."""
        k = self._min_repeats
        where: dict[str, list[int]] = {}
        for i, u in enumerate(units):
            where.setdefault(u, []).append(i)
        for ps in where.values():
            if len(ps) < k:
                continue
            at = set(ps)
            for p in ps:
                for n in range(1, self._max_n + 1):
                    if all(p + j * n in at for j in range(1, k)):
                        return True
        return False

    def _flag(self, hyp_units: tuple[str, ...], ref_units: tuple[str, ...], stream: bool = False) -> dict[int, str]:
        """unit index -> rule of its first flag; ``stream``: a streaming-mode sample (the ``unheard`` rule)."""
        n, n_ref = len(hyp_units), len(ref_units)
        if n_ref == 0:
            return {i: "noise" for i in range(n)}
        flagged: dict[int, str] = {}
        # " u0 u1 …": the unit index of a position is the number of spaces before it
        hyp, ref = " " + " ".join(hyp_units), " " + " ".join(ref_units)
        if self._may_loop(hyp_units):
            for m in self._loop.finditer(hyp):
                gram = m.group("g")
                legit = max(1, self._max_run(gram, ref))
                for i in range(hyp.count(" ", 0, m.start() + legit * len(gram)), hyp.count(" ", 0, m.end())):
                    flagged.setdefault(i, "loop")
        if self._phrase is not None:
            seen: dict[str, int] = {}
            for m in self._phrase.finditer(hyp):
                key = m.group()
                seen[key] = seen.get(key, 0) + 1
                if seen[key] > self._count(key, ref):
                    for i in range(hyp.count(" ", 0, m.start()), hyp.count(" ", 0, m.end())):
                        flagged.setdefault(i, "phrase")
        ratio, rule = (self.stream_length_ratio, "unheard") if stream else (self.length_ratio, "length")
        if ratio is not None:
            for i in range(math.floor(ratio * n_ref + 1e-9), n):
                flagged.setdefault(i, rule)
        return flagged

    @staticmethod
    def _max_run(gram: str, joined: str) -> int:
        """Most consecutive copies of ``gram`` in ``joined`` (both " u1 u2 …")."""
        hay, k = joined + " ", 0
        while gram * (k + 1) + " " in hay:
            k += 1
        return k

    @staticmethod
    def _count(key: str, joined: str) -> int:
        """Occurrences of the units ``key`` (" u1 u2") in ``joined``, on unit boundaries."""
        return (joined + " ").count(key + " ")

    def find(self, completion: str, reference: str, stream: bool = False) -> tuple[int, list[Span]]:
        """``(hallucinated unit count, spans)`` of one completion (``stream``: of a streaming-mode sample)."""
        flagged = self._flag(self.norm.unit_tuple(completion), self.norm.unit_tuple(reference), stream)
        if not flagged:
            return 0, []
        return len(flagged), self._spans(completion, self.norm.spans(completion), flagged)

    @staticmethod
    def _spans(completion: str, toks: list, flagged: dict[int, str]) -> list[Span]:
        spans: list[Span] = []
        run: list[int] = []
        for i in sorted(flagged):
            if run and (i != run[-1] + 1 or flagged[i] != flagged[run[0]]):
                spans.append(Span(toks[run[0]][1], toks[run[-1]][2], flagged[run[0]], ""))
                run = []
            run.append(i)
        if run:
            spans.append(Span(toks[run[0]][1], toks[run[-1]][2], flagged[run[0]], ""))
        return [s._replace(text=completion[s.start : s.end]) for s in spans]

    # ------------------------------------------------------------------ API

    def penalty(self, n_units: int) -> float:
        p = self.per_unit * n_units
        if self.max_penalty is not None:
            p = min(self.max_penalty, p)
        return -p if p else 0.0

    def spans(self, completions: list[str], references: list[str]) -> list[list[Span]]:
        """The hallucinated spans of each completion, for logging."""
        return [self.find(c, r)[1] for c, r in zip(completions, references)]

    def __call__(
        self, completions: list[str], *, references: list[str], samples: list[dict], **kwargs: Any
    ) -> list[Optional[float]]:
        found = [self.find(c, r, (s or {}).get("stream_boundary_s") is not None)
                 for c, r, s in zip(completions, references, samples)]
        self.last_spans = [s for _, s in found]
        return [self.penalty(n) for n, _ in found]
