"""Hotword customisation by retrieval (the report's § Hotword Customization; issue 18).

The report's mechanism: a fast CTC decoder on the encoder gives a first hypothesis
(:mod:`funrl.hotwords.ctc`); candidate hotwords are retrieved from the user's vocabulary by
phoneme edit distance against it (:mod:`funrl.hotwords.retrieval`, phonemes from
:mod:`funrl.hotwords.phonemes`); the retrieved terms go into the LLM's context.

Here: the phoneme conversion (pinyin with tones for Mandarin, eSpeak NG phonemes for English,
characters for anything else), the phoneme index and its approximate-substring search (rapidfuzz),
batched greedy CTC decoding and CTC scoring, and :class:`funrl.hotwords.rag.RagContext` (first pass →
retrieval → the rows' ``hotwords``, or the context prompts' embeddings in one encoder pass, or the
transcripts, optionally checked against the CTC head: ``funrl eval --rag-check ctc``). Elsewhere: the CTC
head of the transformers families (:mod:`funrl.models.families.ctc`, trained by ``funrl sft``),
``funrl eval --hotwords rag``, GRPO's ``data.hotwords=rag`` (the encoder role), ``sft.hotword_mix``,
and ``hotwords.txt`` with sound-alike distractors from ``funrl data synth``.
"""

from funrl.hotwords.ctc import ctc_greedy_decode
from funrl.hotwords.phonemes import phonemes
from funrl.hotwords.retrieval import Candidate, HotwordIndex

__all__ = ["Candidate", "HotwordIndex", "ctc_greedy_decode", "phonemes"]
