"""The longest clip a saved model can take: its LLM context in seconds of audio.

For the current funrl model format (``funrl_model.json`` + ``llm/config.json``, encoder type
``conv_transformer``): fbank runs at 100 frames/s, the encoder subsamples by 4 and the adaptor by
``adaptor.downsample``, so a second of audio is ``100 / 4 / downsample`` LLM positions (12.5 for
the default 2). The limit is::

    (llm max_position_embeddings - PROMPT_RESERVE - max_new_tokens) / audio positions per second

``PROMPT_RESERVE`` is a round allowance for the chat template, task prompt and hotword block
rather than their exact token count (which depends on the tokenizer and the row): simple, and on
the safe side. Another encoder type gives no limit (None) until its rate is written down here.

For a transformers family folder (``config.json`` ``model_type``) the rate and the encoder's own
cap come from :data:`FAMILY_AUDIO`: Fun-ASR-Nano puts one audio token per 6 fbank frames (about
16.7 a second) and its encoder's position table ends at 2048 such frames (about 123 s);
Qwen2-Audio's Whisper encoder takes 30 s windows at 25 tokens a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

FBANK_FRAMES_PER_S = 100
ENCODER_SUBSAMPLING = {"conv_transformer": 4}
PROMPT_RESERVE = 128  # LLM positions left for the prompt text around the speech
FAMILY_AUDIO = {  # model_type -> (LLM positions per second of audio, the encoder's own cap in seconds)
    "fun_asr_nano": (FBANK_FRAMES_PER_S / 6, 2048 * 6 / FBANK_FRAMES_PER_S),
    "qwen2_audio": (25.0, 30.0),
}


def max_clip_seconds(model_dir: str | Path, max_new_tokens: int) -> Optional[float]:
    """Seconds of audio that fit in the model's LLM context, or None when unknown."""
    model_dir = Path(model_dir)
    if not (model_dir / "funrl_model.json").is_file():
        return _family_seconds(model_dir, max_new_tokens)
    try:
        meta = json.loads((model_dir / "funrl_model.json").read_text(encoding="utf-8"))
        llm = json.loads((model_dir / "llm" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # loading the model reports what is wrong with the folder
    sub = ENCODER_SUBSAMPLING.get(meta.get("encoder", {}).get("type", "conv_transformer"))
    positions = llm.get("max_position_embeddings")
    if sub is None or not positions:
        return None
    per_second = FBANK_FRAMES_PER_S / sub / int(meta.get("adaptor", {}).get("downsample", 1))
    return max(0.0, (positions - PROMPT_RESERVE - max_new_tokens) / per_second)


def _family_seconds(model_dir: Path, max_new_tokens: int) -> Optional[float]:
    try:
        cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if cfg.get("model_type") not in FAMILY_AUDIO:
        return None
    per_second, cap = FAMILY_AUDIO[cfg["model_type"]]
    positions = (cfg.get("text_config") or {}).get("max_position_embeddings")
    if not positions:
        return cap
    return max(0.0, min(cap, (positions - PROMPT_RESERVE - max_new_tokens) / per_second))


def too_long(utterances: Sequence, limit: Optional[float]) -> list:
    """The utterances whose (measured or declared) ``duration`` exceeds ``limit`` seconds."""
    if limit is None:
        return []
    return [u for u in utterances if u.duration is not None and u.duration > limit]


def too_long_message(manifest: str | Path, long: Sequence, limit: float, model_dir: str | Path,
                     fix: str) -> str:
    """One line: how many clips are too long, the first with its line, id and length, and ``fix``."""
    first = long[0]
    more = f" and {len(long) - 1} more" if len(long) > 1 else ""
    where = f"{manifest}:{first.line}" if first.line is not None else str(manifest)
    return (f"{where}: field 'audio': clip {first.id!r} lasts {first.duration:.1f} s{more}, longer than the "
            f"{limit:.1f} s of audio that fit in the context of {model_dir}; {fix}")
