"""R2, keyword precision and recall (report §4.2.4.3).

The candidate terms of a sample are its ``keywords`` (spoken) plus its ``hotwords`` (the context
list, which carries distractors that were not spoken). A term counts once per sample (types, not
occurrences), matched after normalisation on unit boundaries (:func:`funrl.rewards.text.match_keywords`):

- TP: the term is in the hypothesis and in the reference;
- FP: in the hypothesis but not in the reference (e.g. a distractor hotword the model copied);
- FN: in the reference but not in the hypothesis.

"In the reference" is decided by matching the reference text, so a listed keyword that the
reference does not contain is treated like a distractor. Precision is 1.0 when the hypothesis
holds no candidate (nothing was claimed wrongly); recall is 1.0 when the reference holds none.
The reward combines them by ``mode``: ``"fbeta"`` (F-beta, default F1) or ``"weighted"``
(``precision_weight·P + recall_weight·R``). It lies in [0, 1] and is ``None`` for a sample
without keywords. The report does not give the combination; F1 is the neutral choice.
"""

from __future__ import annotations

from typing import Any, Optional

from funrl.rewards.registry import register
from funrl.rewards.text import TextNorm, match_keywords


@register("keywords")
class Keywords:
    """Keyword F-beta (or weighted P/R) with hotword distractors; ``None`` without keywords.

    >>> kw = Keywords()
    >>> sample = {"keywords": ["Fun-ASR"], "hotwords": ["Fun-ASR", "FunAudio"]}
    >>> kw(["we use fun asr", "we use funaudio", "we use fun asr and FunAudio", "hello"],
    ...    references=["We use Fun-ASR."] * 3 + ["hello"], samples=[sample] * 3 + [{}])
    [1.0, 0.0, 0.6666666666666666, None]
    """

    def __init__(
        self,
        mode: str = "fbeta",
        beta: float = 1.0,
        precision_weight: float = 0.5,
        recall_weight: float = 0.5,
        lowercase: bool = True,
        punctuation: bool = True,
        width: bool = True,
    ):
        if mode not in ("fbeta", "weighted"):
            raise ValueError(f"mode must be 'fbeta' or 'weighted', got {mode!r}")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.mode, self.beta = mode, beta
        self.wp, self.wr = precision_weight, recall_weight
        self.norm = TextNorm(lowercase=lowercase, punctuation=punctuation, width=width)

    def score(self, hypothesis: str, reference: str, keywords: list[str], hotwords: list[str]) -> Optional[float]:
        if not keywords:
            return None
        terms = list(dict.fromkeys([*keywords, *hotwords]))
        in_ref = set(match_keywords(reference, terms, self.norm))
        in_hyp = set(match_keywords(hypothesis, terms, self.norm))
        tp, fp, fn = len(in_hyp & in_ref), len(in_hyp - in_ref), len(in_ref - in_hyp)
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        if self.mode == "weighted":
            return self.wp * p + self.wr * r
        b2 = self.beta**2
        return (1 + b2) * p * r / (b2 * p + r) if p + r else 0.0

    def __call__(
        self, completions: list[str], *, references: list[str], samples: list[dict], **kwargs: Any
    ) -> list[Optional[float]]:
        return [
            self.score(c, r, list(s.get("keywords") or []), list(s.get("hotwords") or []))
            for c, r, s in zip(completions, references, samples)
        ]
