"""R1, transcription accuracy: ``1 − WER(reference, hypothesis)`` (report §4.2.4.3).

The error rate is the project's single definition (:mod:`funrl.rewards.text`): per character for
Mandarin and other unspaced scripts, per CJK character plus per Latin word for code-switched text,
after configurable normalisation, counted as jiwer counts them (:func:`funrl.rewards.text.counts_from_units`).

Departure from the report: ``1 − WER`` is unbounded below (a looping output of 50 words on a
5-word reference has WER 10, R1 = −9). One such outlier would dominate the group's standard
deviation in the GRPO advantage and flatten the signal between the other completions, and the
hallucination reward already charges for the extra length. R1 is therefore clamped at
``min_reward`` (default −1.0; ``None`` keeps it unbounded). An empty reference (a pure-noise
sample) scores 1.0 for an empty output and 0.0 for any output (its WER is defined as 1).
"""

from __future__ import annotations

from typing import Any, Optional

from funrl.rewards.registry import register
from funrl.rewards.text import TextNorm, counts_from_units


@register("accuracy")
class Accuracy:
    """``max(min_reward, 1 − WER)`` per completion, never ``None``.

    >>> acc = Accuracy()
    >>> acc(["the cat sat", "我爱南京", "THE CAT, SAT!", "a a a a a a a a"],
    ...     references=["the cat sat on the mat", "我爱北京", "the cat sat", "a"], samples=[{}] * 4)
    [0.5, 0.75, 1.0, -1.0]
    """

    error_rate_metric = "wer"  # 1 − mean of this reward is the batch's error rate (rewards.protocol)

    def __init__(
        self,
        lowercase: bool = True,
        punctuation: bool = True,
        width: bool = True,
        min_reward: Optional[float] = -1.0,
    ):
        self.norm = TextNorm(lowercase=lowercase, punctuation=punctuation, width=width)
        self.min_reward = min_reward

    def __call__(
        self, completions: list[str], *, references: list[str], samples: list[dict], **kwargs: Any
    ) -> list[Optional[float]]:
        units = self.norm.unit_tuple
        counts = counts_from_units([units(r) for r in references], [units(c) for c in completions])
        out = [1.0 - c.rate for c in counts]
        if self.min_reward is not None:
            out = [max(self.min_reward, r) for r in out]
        return out
