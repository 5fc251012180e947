"""The Fun-ASR-style audio LLM: encoder -> adaptor -> causal LM (+ CTC head), its prompt and I/O.

Decoding lives with the rollout engines (:mod:`funrl.rollout.generation`); teacher-forced
log-probs with the policy (:mod:`funrl.policy.teacher_forcing`).

Names are imported lazily, so that importing ``funrl.models.config`` (the config schema does) does
not load torch or transformers.

>>> from funrl.models import load_pretrained, build_prompt_embeds              # doctest: +SKIP
>>> model, tok = load_pretrained("runs/tiny_sft/best")        # doctest: +SKIP
"""

import importlib

_EXPORTS = {
    "AudioLLM": "audio_llm", "build_model": "audio_llm",
    "ModelConfig": "config", "PromptConfig": "config",
    "load_pretrained": "io", "save_pretrained": "io",
    "Prompts": "prompt", "build_prompt_embeds": "prompt",
    "train_tokenizer": "tokenizer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"funrl.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'funrl.models' has no attribute {name!r}")
