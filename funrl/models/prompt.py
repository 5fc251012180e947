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
prompt. :func:`pack_completions` lays prompts and completions out for a forward pass (prompts
left-padded, completions right-padded), shared by the SFT loss and :func:`completion_logprobs`.
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


def pack_completions(llm, prompt_embeds: Sequence[torch.Tensor], completion_ids: Sequence[Sequence[int]]):
    """Lay out ``prompt_i + completion_i`` rows: prompts left-padded to ``P``, completions right-padded.

    Returns ``(inputs_embeds [N, P+C, H], attention_mask [N, P+C], position_ids [N, P+C],
    targets [N, C], target_mask [N, C], P)``; the logits predicting ``targets[:, j]`` sit at
    position ``P - 1 + j``. Row ``i`` uses ``prompt_embeds[i]`` (repeat prompts for G samples).
    """
    embed = llm.get_input_embeddings()
    device, dtype = embed.weight.device, embed.weight.dtype
    n = len(prompt_embeds)
    p_max = max(int(e.shape[0]) for e in prompt_embeds)
    c_max = max((len(c) for c in completion_ids), default=0)
    hidden = prompt_embeds[0].shape[1]
    targets = torch.zeros(n, c_max, dtype=torch.long, device=device)
    tmask = torch.zeros(n, c_max, dtype=torch.bool, device=device)
    for i, c in enumerate(completion_ids):
        targets[i, : len(c)] = torch.as_tensor(list(c), dtype=torch.long, device=device)
        tmask[i, : len(c)] = True
    comp = embed(targets)  # [N, C, H]
    rows, masks = [], []
    for i, e in enumerate(prompt_embeds):
        pad = p_max - e.shape[0]
        rows.append(torch.cat([e.new_zeros(pad, hidden).to(dtype), e.to(dtype), comp[i]], dim=0))
        masks.append(torch.cat([torch.zeros(pad, dtype=torch.bool, device=device),
                                torch.ones(e.shape[0], dtype=torch.bool, device=device), tmask[i]]))
    inputs = torch.stack(rows)  # [N, P+C, H]
    attn = torch.stack(masks).long()  # [N, P+C]
    pos = (attn.cumsum(-1) - 1).clamp(min=0)  # [N, P+C]
    return inputs, attn, pos, targets, tmask, p_max


def completion_logprobs(model_or_llm, prompt_embeds, completion_ids, temperature: float = 1.0):
    """Per-token log π(token | prompt, prefix) under ``logits / temperature`` (0 -> raw logits).

    ``model_or_llm``: an AudioLLM, or its ``llm`` (a transformers or PEFT causal LM).
    ``prompt_embeds``: ``N`` tensors ``[L_i, H]``; ``completion_ids``: ``N`` ragged id lists.
    Returns ``(logprobs [N, C], mask [N, C])``, differentiable, zero where ``mask`` is False.
    """
    llm = getattr(model_or_llm, "llm", model_or_llm)
    inputs, attn, pos, targets, tmask, p = pack_completions(llm, prompt_embeds, completion_ids)
    c = targets.shape[1]
    if c == 0:
        return targets.float(), tmask
    out = llm(inputs_embeds=inputs, attention_mask=attn, position_ids=pos, use_cache=False, logits_to_keep=c + 1)
    logits = out.logits[:, :-1].float()  # [N, C, V]: positions P-1 .. P+C-2
    if temperature and temperature > 0:
        logits = logits / temperature
    lp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)  # [N, C]
    return lp.masked_fill(~tmask, 0.0), tmask
