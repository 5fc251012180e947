"""Batched greedy transcription of utterances with an AudioLLM (the path ``funrl eval`` and SFT's
dev evaluation share): features -> :meth:`AudioLLM.encode_audio` -> :func:`build_prompt_embeds` ->
:func:`funrl.rollout.generation.generate` (temperature 0) -> text."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from funrl.rollout.generation import decode, generate
from funrl.models.prompt import build_prompt_embeds
from funrl.rollout.protocol import SamplingParams


def compute_features(utts: Sequence[Any]) -> list[np.ndarray]:
    """fbank ``[T, 80]`` per utterance (``funrl.data``), in order."""
    from funrl.data.audio import load_audio
    from funrl.data.features import FbankExtractor

    fbank = FbankExtractor()
    return [fbank(load_audio(u.audio)) for u in utts]


@torch.inference_mode()
def transcribe(
    model, tokenizer, utts: Sequence[Any], feats: Sequence[np.ndarray] | None = None,
    batch_size: int = 32, max_new_tokens: int = 64,
) -> list[str]:
    """Greedy transcripts for ``utts`` (features computed when ``feats`` is None), in order."""
    from funrl.data.features import collate

    if feats is None:
        feats = compute_features(utts)
    was_training = model.training
    model.eval()
    order = sorted(range(len(utts)), key=lambda i: feats[i].shape[0])  # similar lengths per batch
    out: dict[int, str] = {}
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        x, lens = collate([feats[i] for i in idx])
        speech = model.encode_audio(x, lens)
        prompts = build_prompt_embeds(model, tokenizer, speech, [utts[i] for i in idx])
        batch = generate(model, prompts.embeds, 1, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))
        for i, text in zip(idx, decode(tokenizer, batch.token_ids)):
            out[i] = text
    hyps = [out[i] for i in range(len(utts))]
    model.train(was_training)
    return hyps


def transcribe_rows(model, utts: Sequence[Any], batch_size: int = 32, max_new_tokens: int = 64,
                    context=None, seen: list | None = None) -> list[str]:
    """Greedy transcripts with any loaded audio LLM (:func:`funrl.models.families.load_audio_llm`):
    batches of similar duration through its own ``transcribe``, returned in manifest order.
    ``context``: rows -> rows given to the prompt builder (hotword RAG:
    :class:`funrl.hotwords.rag.RagContext`); ``seen``: filled with those rows, in manifest order."""
    order = sorted(range(len(utts)), key=lambda i: utts[i].duration or 0.0)
    out: dict[int, str] = {}
    rows_out: dict[int, dict] = {}
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        rows = [utts[i].to_dict() for i in idx]
        if context is not None and hasattr(context, "transcribe"):  # RAG: one encoder pass for both
            rows, texts = context.transcribe(rows, max_new_tokens)
        else:
            rows = context(rows) if context is not None else rows
            texts = model.transcribe(rows, max_new_tokens)
        for i, row, text in zip(idx, rows, texts):
            out[i], rows_out[i] = text, row
    if seen is not None:
        seen[:] = [rows_out[i] for i in range(len(utts))]
    return [out[i] for i in range(len(utts))]
