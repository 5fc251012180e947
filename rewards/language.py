"""R4, language match: −1 when the output's language is not the input's (report §4.2.4.3).

The expected language is the sample's ``language`` (``en``, ``zh`` or ``mixed``), or, when the
sample has none, the one detected from its reference. The output's language is detected by
script share (:func:`funrl.rewards.text.detect_language`). The output matches when its detected
language equals the expected one *or* the reference's own detected language, so a correct
transcript is never penalised (a ``zh`` sample whose reference holds an English product name
detects as ``mixed``, and so may its transcript). Code-switched (``mixed``) samples accept mixed
output; an all-English or all-Chinese output of a mixed sample is a translation and penalised.
An output without letters (empty, digits only) cannot be judged and scores 0. ``None`` when no
language is known (no ``language`` field and an empty reference).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from funrl.rewards.registry import register
from funrl.rewards.text import TextNorm, detect_language

LANGUAGES = ("en", "zh", "mixed")


@register("language")
class Language:
    """``penalty`` (default −1.0) on a language mismatch, else 0.0; ``None`` when unknown.

    >>> lang = Language()
    >>> lang(["你好世界", "hello world", "我们开个 meeting 吧", "我们开个会吧", "uh"],
    ...      references=["你好世界", "你好世界", "我们开个 meeting 吧", "我们开个 meeting 吧", ""],
    ...      samples=[{"language": "zh"}, {"language": "zh"}, {"language": "mixed"}, {"language": "mixed"}, {}])
    [0.0, -1.0, 0.0, -1.0, None]
    """

    def __init__(
        self,
        penalty: float = -1.0,
        mixed_share: float = 0.1,
        lowercase: bool = True,
        punctuation: bool = True,
        width: bool = True,
    ):
        self.penalty, self.mixed_share = penalty, mixed_share
        self.norm = TextNorm(lowercase=lowercase, punctuation=punctuation, width=width)

    def _detect(self, text: str) -> Optional[str]:
        return detect_language(text, self.mixed_share, self.norm)

    def score(
        self, completion: str, reference: str, language: Optional[str], detect: Optional[Callable] = None
    ) -> Optional[float]:
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"sample language {language!r} is not one of {', '.join(LANGUAGES)}")
        detect = detect or self._detect
        ref_lang = detect(reference) if reference else None
        expected = language or ref_lang
        if expected is None:
            return None
        got = detect(completion)
        if got is None or got == expected or got == ref_lang:
            return 0.0
        return float(self.penalty)

    def __call__(
        self, completions: list[str], *, references: list[str], samples: list[dict], **kwargs: Any
    ) -> list[Optional[float]]:
        memo: dict[str, Optional[str]] = {}  # a GRPO group shares its reference (and often outputs)

        def detect(text: str) -> Optional[str]:
            if text not in memo:
                memo[text] = self._detect(text)
            return memo[text]

        return [self.score(c, r, s.get("language"), detect) for c, r, s in zip(completions, references, samples)]
