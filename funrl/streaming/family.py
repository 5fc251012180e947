"""The ``continue_fn`` of a transformers audio LLM (:class:`funrl.models.families.base.FamilyAdapter`)
for :class:`funrl.streaming.StreamingDecoder`, and the streaming evaluation of a manifest.

At a chunk boundary the model gets the row's prompt with the audio cut at the boundary, then the
committed tokens as the beginning of its answer, and continues greedily. With one chunk covering
the whole clip and nothing committed this is exactly the offline transcription (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch


def continue_fn(audio_llm, row: Mapping[str, Any], max_new_tokens: int = 64):
    """``(audio_s, prefix token ids) -> continuation token ids`` for one manifest row. The file is
    read once; each chunk's prompt hears it up to ``audio_s`` (``audio_end_s``, cut by the prompt
    builder as for streaming training rows, :func:`funrl.streaming.training.cut_audio`)."""
    from funrl.rollout.generation import generate
    from funrl.rollout.protocol import SamplingParams

    data = row.get("audio_bytes") or Path(row["audio"]).read_bytes()
    lm = audio_llm.text_lm()
    embed = lm.get_input_embeddings()
    sp = SamplingParams(temperature=0, max_new_tokens=max_new_tokens, stop_token_ids=audio_llm.stop_token_ids)

    def cont(audio_s: float, prefix: list) -> list:
        with torch.inference_mode():
            (prompt,) = audio_llm.prompt_embeds([{**dict(row), "audio_bytes": data, "audio_end_s": audio_s}])
            if prefix:
                ids = torch.tensor(prefix, dtype=torch.long, device=embed.weight.device)
                prompt = torch.cat([prompt, embed(ids).to(prompt.dtype)])
            out = generate(lm, [prompt], 1, sp)
        return [t for t in out.token_ids[0] if t not in sp.stop_token_ids]

    return cont


def stream_rows(audio_llm, rows: Sequence[Mapping[str, Any]], chunk_s: float, rollback: int,
                max_new_tokens: int = 64) -> tuple[list[str], dict]:
    """Streaming transcripts of ``rows`` and the latency figures: mean first-token latency (audio
    seconds, over clips that produced a token), revisions per clip, real-time factor."""
    from funrl.data.audio import audio_info
    from funrl.streaming.decode import StreamingDecoder

    hyps, first, revisions, wall, audio = [], [], 0, 0.0, 0.0
    for row in rows:
        # the file's own length (the manifest's duration is rounded), as examples/stream_file.py takes it
        duration = float(audio_info(row["audio"]).duration) if Path(row["audio"]).is_file() else float(row["duration"])
        res = StreamingDecoder(continue_fn(audio_llm, row, max_new_tokens), chunk_s, rollback).run(duration)
        hyps.append(audio_llm.tokenizer.decode(res.tokens, skip_special_tokens=True))
        if res.first_token_s is not None:
            first.append(res.first_token_s)
        revisions += res.revisions
        wall += res.rtf * duration
        audio += duration
    return hyps, {"chunk_ms": round(chunk_s * 1000), "rollback_tokens": rollback,
                  "first_token_latency_s": float(np.mean(first)) if first else None,
                  "revisions_per_utterance": revisions / max(1, len(rows)),
                  "real_time_factor": wall / audio if audio else None}
