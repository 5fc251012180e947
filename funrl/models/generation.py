"""Generation from prompt embeddings: greedy or sampled, ``n`` samples per prompt, KV-cached.

Our own decoding loop over a transformers causal LM (``past_key_values``), rather than
``generate(inputs_embeds=...)``, so the returned log-probabilities are exactly the rollout
protocol's (``funrl.rollout.protocol``): ``log_softmax(logits / temperature)`` of the sampled token
before top-p/top-k truncation, raw logits when greedy (temperature 0). Prompts are left-padded with
position ids counted from each prompt's first real token, the same layout as
:func:`funrl.models.prompt.pack_completions`, so a full forward pass recomputes the same numbers.

Rows are prompt-major (``p0s0, p0s1, p1s0, ...``); a completion includes its stop token when one
ended it (``finish_reason`` ``stop``), otherwise it has ``max_new_tokens`` tokens (``length``).
"""

from __future__ import annotations

from typing import Sequence

import torch

from funrl.rollout.protocol import RolloutBatch, SamplingParams


def _stop_ids(llm, sampling: SamplingParams) -> set[int]:
    if sampling.stop_token_ids:
        return {int(t) for t in sampling.stop_token_ids}
    eos = llm.config.eos_token_id
    if eos is None:
        raise ValueError("generate: no stop token: pass SamplingParams(stop_token_ids=...) or set the LLM's eos_token_id")
    return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}


def _sample(scaled: torch.Tensor, sampling: SamplingParams, gen: torch.Generator | None) -> torch.Tensor:
    """Draw one token per row from ``scaled [N, V]`` after top-k / top-p truncation."""
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    scores = scaled
    if sampling.top_k and sampling.top_k > 0:
        scores = TopKLogitsWarper(top_k=sampling.top_k)(None, scores)
    if sampling.top_p < 1.0:
        scores = TopPLogitsWarper(top_p=sampling.top_p)(None, scores)
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)  # [N]


def _cache_kwargs(llm, out) -> dict:
    """The KV cache of ``out`` as the keyword this transformers version takes.

    transformers 5.2x renamed ``past_key_values`` to ``cache`` (the old name warns, and goes in 5.40).
    """
    cache = getattr(out, "cache", None)
    if cache is not None:
        return {"cache": cache}
    return {"past_key_values": out.past_key_values}


@torch.inference_mode()
def generate(model_or_llm, prompt_embeds: Sequence[torch.Tensor], n: int, sampling: SamplingParams) -> RolloutBatch:
    """``n`` completions for each ``[L_i, H]`` prompt (an AudioLLM or its ``llm``)."""
    llm = getattr(model_or_llm, "llm", model_or_llm)
    embed = llm.get_input_embeddings()
    device, dtype = embed.weight.device, embed.weight.dtype
    rows = [e for e in prompt_embeds for _ in range(n)]
    prompt_index = [i for i in range(len(prompt_embeds)) for _ in range(n)]
    if not rows:
        return RolloutBatch([], [], [], [])
    stop = _stop_ids(llm, sampling)
    greedy = not sampling.temperature or sampling.temperature <= 0
    gen = None
    if sampling.seed is not None:
        gen = torch.Generator(device=device).manual_seed(int(sampling.seed))

    p_max = max(int(e.shape[0]) for e in rows)
    inputs = torch.stack([torch.cat([e.new_zeros(p_max - e.shape[0], e.shape[1]), e]) for e in rows]).to(dtype)
    attn = torch.stack(
        [torch.arange(p_max, device=device) >= p_max - int(e.shape[0]) for e in rows]
    ).long()  # [N, P]
    pos = (attn.cumsum(-1) - 1).clamp(min=0)  # [N, P]
    out = llm(inputs_embeds=inputs, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1)
    num = len(rows)
    tokens: list[list[int]] = [[] for _ in range(num)]
    logps: list[list[float]] = [[] for _ in range(num)]
    done = torch.zeros(num, dtype=torch.bool, device=device)
    stop_t = torch.tensor(sorted(stop), device=device)
    next_pos = pos[:, -1:] + 1  # [N, 1]
    for _ in range(sampling.max_new_tokens):
        logits = out.logits[:, -1].float()  # [N, V]
        scaled = logits if greedy else logits / sampling.temperature
        logp = torch.log_softmax(scaled, dim=-1)
        tok = logits.argmax(-1) if greedy else _sample(scaled, sampling, gen)  # [N]
        tok_lp = logp.gather(-1, tok[:, None]).squeeze(-1)
        for i in torch.nonzero(~done).flatten().tolist():
            tokens[i].append(int(tok[i]))
            logps[i].append(float(tok_lp[i]))
        done |= torch.isin(tok, stop_t)
        if bool(done.all()):
            break
        attn = torch.cat([attn, attn.new_ones(num, 1)], dim=1)
        out = llm(
            inputs_embeds=embed(tok[:, None]), attention_mask=attn, position_ids=next_pos,
            use_cache=True, **_cache_kwargs(llm, out),
        )
        next_pos = next_pos + 1
    reasons = ["stop" if t and t[-1] in stop else "length" for t in tokens]
    return RolloutBatch(tokens, logps, reasons, prompt_index, meta={"engine": "funrl.models.generation"})


def decode(tokenizer, token_ids: Sequence[Sequence[int]]) -> list[str]:
    """Transcripts from completions (special tokens such as ``<|im_end|>`` dropped)."""
    return [tokenizer.decode(list(t), skip_special_tokens=True).strip() for t in token_ids]
