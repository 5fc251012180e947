"""The Fun-ASR chat prompt, and the one function that turns it into embeddings.

Layout (ChatML, as Fun-ASR-Nano)::

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
    <|im_start|>user\\n{context}{task prompt}<|startofspeech|>[speech]<|endofspeech|><|im_end|>\\n
    <|im_start|>assistant\\n{target}<|im_end|>

``[speech]`` is replaced by the adaptor outputs (one embedding per adaptor frame). The task prompt
is picked by the utterance's language (``prompt.task_prompts``; ``default`` when the language is
unknown or ``prompt.language_hint`` is off). With ``prompt.use_hotwords`` and a non-empty
``hotwords`` list, ``{context}`` is the context preamble of Fun-ASR-Nano with
``热词列表：[w1, w2]``; otherwise it is empty. A noise-only clip's target is the empty string, so
its completion is ``<|im_end|>`` alone.

:func:`build_prompt_embeds` is used by SFT, rollout and evaluation alike, so the three see the same
prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from funrl.models.config import PromptConfig

HOTWORD_PREAMBLE = "请结合上下文信息，更加准确地完成语音转写任务。如果没有相关信息，我们会留空。\n\n\n**上下文信息：**\n\n\n"


def _field(sample: Any, name: str, default=None):
    if isinstance(sample, dict):
        return sample.get(name, default)
    return getattr(sample, name, default)


def prompt_texts(cfg: PromptConfig, sample: Any) -> tuple[str, str]:
    """The text before and after the speech span for one sample (an Utterance or a dict)."""
    lang = _field(sample, "language") if cfg.language_hint else None
    task = cfg.task_prompts.get(lang or "default", cfg.task_prompts.get("default", ""))
    context = ""
    hotwords = _field(sample, "hotwords") or []
    if cfg.use_hotwords and hotwords:
        context = HOTWORD_PREAMBLE + "热词列表：[" + ", ".join(hotwords) + "]\n"
    before = f"<|im_start|>system\n{cfg.system}<|im_end|>\n<|im_start|>user\n{context}{task}<|startofspeech|>"
    after = "<|endofspeech|><|im_end|>\n<|im_start|>assistant\n"
    return before, after


def template_strings(cfg: PromptConfig) -> list[str]:
    """Every fixed string of the template (added to the tokenizer's training text)."""
    return [cfg.system, "system\nuser\nassistant\n", HOTWORD_PREAMBLE, "热词列表：[a, b]\n", *cfg.task_prompts.values()]


def target_ids(tokenizer, text: str) -> list[int]:
    """Token ids of an assistant target: the transcript then ``<|im_end|>``."""
    ids = tokenizer(text, add_special_tokens=False).input_ids if text else []
    return ids + [tokenizer.convert_tokens_to_ids("<|im_end|>")]


@dataclass
class Prompts:
    embeds: list[torch.Tensor]  # [B] of [L_i, H] prompt embeddings, speech spliced in
    target_ids: list[list[int]] | None = None  # [B] ragged, each ending in <|im_end|> (training only)


def _split_speech(speech_embeds) -> list[torch.Tensor]:
    if (isinstance(speech_embeds, tuple) and len(speech_embeds) == 2 and torch.is_tensor(speech_embeds[1])
            and speech_embeds[1].dim() == 1 and speech_embeds[0].dim() == 3):
        padded, lengths = speech_embeds  # ([B, S, H], [B])
        return [padded[i, : int(n)] for i, n in enumerate(lengths)]
    return list(speech_embeds)


def build_prompt_embeds(
    model, tokenizer, speech_embeds, samples: Sequence[Any], targets: Sequence[str] | None = None
) -> Prompts:
    """Prompt embeddings for a batch.

    ``model``: an :class:`~funrl.models.audio_llm.AudioLLM` (its ``cfg.prompt`` and ``llm``'s input
    embeddings are used). ``speech_embeds``: a list of ``[S_i, H]`` or ``(padded [B, S, H], lengths)``.
    ``samples``: Utterances or dicts (``language``, ``hotwords``). ``targets``: transcripts, for
    training. Returns :class:`Prompts`.
    """
    speech = _split_speech(speech_embeds)
    if len(speech) != len(samples):
        raise ValueError(f"build_prompt_embeds: {len(speech)} speech embeddings for {len(samples)} samples")
    embed = model.llm.get_input_embeddings()
    device = embed.weight.device
    out = []
    for sp, sample in zip(speech, samples):
        before, after = prompt_texts(model.cfg.prompt, sample)
        ids_b = torch.tensor(tokenizer(before, add_special_tokens=False).input_ids, device=device)
        ids_a = torch.tensor(tokenizer(after, add_special_tokens=False).input_ids, device=device)
        out.append(torch.cat([embed(ids_b), sp.to(embed.weight.dtype), embed(ids_a)], dim=0))  # [L_i, H]
    tids = [target_ids(tokenizer, t) for t in targets] if targets is not None else None
    return Prompts(out, tids)
