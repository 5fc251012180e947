"""Hotword customisation by retrieval (the report's § Hotword Customization; issue 18).

The report's mechanism: a fast CTC decoder on the encoder gives a first hypothesis
(:mod:`funrl.hotwords.ctc`); candidate hotwords are retrieved from the user's vocabulary by
phoneme edit distance against it (:mod:`funrl.hotwords.retrieval`, phonemes from
:mod:`funrl.hotwords.phonemes`); the retrieved terms go into the LLM's context.

Built so far: the phoneme conversion (pinyin with tones for Mandarin, eSpeak NG phonemes for
English, characters for anything else), the phoneme index and its approximate-substring search
(rapidfuzz), and batched greedy CTC decoding. Not built yet: the CTC head's training for the
transformers family, the ``rag`` mode of ``funrl eval`` and of GRPO rollouts, and the
synthetic vocabulary with sound-alike distractors.
"""

from funrl.hotwords.ctc import ctc_greedy_decode
from funrl.hotwords.phonemes import phonemes
from funrl.hotwords.retrieval import Candidate, HotwordIndex

__all__ = ["Candidate", "HotwordIndex", "ctc_greedy_decode", "phonemes"]
