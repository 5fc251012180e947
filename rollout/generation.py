"""Generation from prompt embeddings: greedy or sampled, ``n`` samples per prompt, KV-cached.

Our own decoding loop over a transformers causal LM, rather than
``generate(inputs_embeds=...)``, so the returned log-probabilities are exactly the rollout
protocol's (``funrl.rollout.protocol``): ``log_softmax(logits / temperature)`` of the sampled token
before top-p/top-k truncation, raw logits when greedy (temperature 0), by the one temperature rule
:func:`funrl.policy.logprobs.tempered`. Prompts are left-padded with position ids counted from each
prompt's first real token, so :func:`funrl.policy.teacher_forcing.completion_logprobs` recomputes the
same numbers (tested).

Memory is per decode step: the KV cache is preallocated for the prompts plus ``max_new_tokens``,
and each step holds one ``[N, V]`` logits row block and its sampling noise, never ``[N, T, V]``
(at a 151,936-token vocabulary with N = 64 that is 39 MB a step instead of 2.5 GB for T = 64).

Rows are prompt-major (``p0s0, p0s1, p1s0, ...``); a completion includes its stop token when one
ended it (``finish_reason`` ``stop``), otherwise it has ``max_new_tokens`` tokens (``length``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from funrl.policy.logprobs import tempered
from funrl.rollout.protocol import RolloutBatch, SamplingParams


def _stop_ids(llm, sampling: SamplingParams) -> set[int]:
    if sampling.stop_token_ids:
        return {int(t) for t in sampling.stop_token_ids}
    eos = llm.config.eos_token_id
    if eos is None:
        raise ValueError("generate: no stop token: pass SamplingParams(stop_token_ids=...) or set the LLM's eos_token_id")
    return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}


def _sample(logp: torch.Tensor, sampling: SamplingParams, race: torch.Tensor) -> torch.Tensor:
    """One token per row of ``logp [N, V]`` (log-softmax of the tempered logits) after top-k /
    top-p truncation, by the exponential race: ``argmax(p / E)`` with ``E ~ Exp(1)`` i.i.d. (``race
    [N, V]``) picks token ``v`` with probability ``p_v / Σp``. ``torch.multinomial(p, 1)`` draws
    the same way from the same generator stream, so a seed gives the same tokens as it did with
    multinomial (tested in tests/models/test_generation.py)."""
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    scores = logp
    if sampling.top_k and sampling.top_k > 0:
        scores = TopKLogitsWarper(top_k=sampling.top_k)(None, scores)
    if sampling.top_p < 1.0:
        scores = TopPLogitsWarper(top_p=sampling.top_p)(None, scores)
    return (scores.exp() / race).argmax(-1)  # [N] (truncated tokens have p = 0)


class _HFDecoder:
    """The transformers forward with its own KV cache: the fallback of :class:`KVDecoder`."""

    def __init__(self, llm):
        self.llm, self.cache, self.attn = llm, None, None
        self.key = "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"

    def prefill(self, inputs, valid, position_ids):  # [P, L, H], [P, L], [P, L] -> [P, V]
        self.attn = valid.long()
        out = self.llm(inputs_embeds=inputs, attention_mask=self.attn, position_ids=position_ids, use_cache=True,
                       logits_to_keep=1)
        self.cache = getattr(out, "cache", None) or out.past_key_values  # transformers 5.2x renamed it
        return out.logits[:, -1].float()

    def expand(self, n):
        self.cache.batch_repeat_interleave(n)
        self.attn = self.attn.repeat_interleave(n, dim=0)

    def step(self, inputs, position_ids):  # [N, 1, H], [N, 1] -> [N, V]
        self.attn = torch.cat([self.attn, self.attn.new_ones(self.attn.shape[0], 1)], dim=1)
        out = self.llm(inputs_embeds=inputs, attention_mask=self.attn, position_ids=position_ids, use_cache=True,
                       **{self.key: self.cache})
        return out.logits[:, -1].float()


def _decoder(llm, capacity: int, lean: bool | None):
    """The lean :class:`KVDecoder` where it runs this model (``lean=None``: when supported)."""
    from funrl.rollout.fast_decode import KVDecoder, unsupported

    if lean is None:
        lean = unsupported(llm) is None
    return KVDecoder(llm, capacity) if lean else _HFDecoder(llm)


@dataclass
class GroupsDone:
    """Prompts whose ``n`` samples have all ended, as :func:`iter_generate` hands them back."""

    prompts: list[int]  # the prompts (positions in ``prompt_embeds``), ascending
    batch: RolloutBatch  # their rows, prompt-major; ``prompt_index`` holds the prompt positions
    step: int  # the decode step (0-based) at which the last of their samples ended; -1: not known (SGLang)


@torch.inference_mode()
def iter_generate(
    model_or_llm, prompt_embeds: Sequence[torch.Tensor], n: int, sampling: SamplingParams, *, lean: bool | None = None,
    each_step: bool = True,
) -> Iterator[GroupsDone]:
    """:func:`generate`, handing back each prompt's group as soon as its ``n`` samples have ended.

    One batched decode over all prompts (no second call): after each decode step, the prompts
    whose samples have all stopped since the last hand-back come out as one :class:`GroupsDone`
    (at the last step, every prompt not yet handed back, including samples cut at
    ``max_new_tokens``). The finished rows stay in the batch until the loop ends (their later
    tokens are computed and ignored); what is handed back never changes afterwards. The rows and
    their log-probs are exactly :func:`generate`'s (same seed, same noise stream). ``each_step=False``:
    no check between steps, every group in one hand-back at the end (:func:`generate`).
    """
    llm = getattr(model_or_llm, "llm", model_or_llm)
    embed = llm.get_input_embeddings()
    device, dtype = embed.weight.device, embed.weight.dtype
    num_prompts = len(prompt_embeds)
    if not num_prompts or n <= 0:
        return
    stop = _stop_ids(llm, sampling)
    greedy = not sampling.temperature or sampling.temperature <= 0
    gen = None
    if sampling.seed is not None:
        gen = torch.Generator(device=device).manual_seed(int(sampling.seed))

    p_max = max(int(e.shape[0]) for e in prompt_embeds)
    inputs = torch.stack([torch.cat([e.new_zeros(p_max - e.shape[0], e.shape[1]), e]) for e in prompt_embeds]).to(dtype)
    valid = torch.stack([torch.arange(p_max, device=device) >= p_max - int(e.shape[0]) for e in prompt_embeds])  # [P, L]
    pos = (valid.long().cumsum(-1) - 1).clamp(min=0)  # [P, L]
    dec = _decoder(llm, p_max + sampling.max_new_tokens, lean)
    logits = dec.prefill(inputs, valid, pos).repeat_interleave(n, dim=0)  # [N, V]
    dec.expand(n)
    num, steps = num_prompts * n, sampling.max_new_tokens
    race = None if greedy else torch.empty(num, logits.shape[-1], device=device)  # [N, V] one step's noise
    tokens = torch.zeros(num, steps, dtype=torch.long)  # [N, max_new]
    logps = torch.zeros(num, steps)
    lengths = torch.full((num,), steps, dtype=torch.long)  # tokens kept per row (up to and with its stop)
    done = torch.zeros(num, dtype=torch.bool, device=device)
    handed = torch.zeros(num_prompts, dtype=torch.bool)  # groups already handed back
    stop_t = torch.tensor(sorted(stop), device=device)
    next_pos = pos[:, -1:].repeat_interleave(n, dim=0) + 1  # [N, 1]
    for t in range(steps):
        logp = torch.log_softmax(tempered(logits, sampling.temperature), dim=-1)  # [N, V]
        tok = logits.argmax(-1) if greedy else _sample(logp, sampling, race.exponential_(generator=gen))  # [N]
        tokens[:, t] = tok.cpu()
        logps[:, t] = logp.gather(-1, tok[:, None]).squeeze(-1).cpu()
        stopped = torch.isin(tok, stop_t) & ~done
        lengths[stopped.cpu()] = t + 1
        done |= stopped
        last = bool(done.all()) or t + 1 == steps
        if each_step or last:
            ready = (done.cpu().view(num_prompts, n).all(1) | last) & ~handed  # [P]
            if bool(ready.any()):
                handed |= ready
                prompts = ready.nonzero().flatten().tolist()
                yield GroupsDone(prompts, _rows(prompts, n, tokens, logps, lengths, stop), t)
        if last:
            break
        logits = dec.step(embed(tok[:, None]), next_pos)
        next_pos = next_pos + 1


def _rows(prompts: list[int], n: int, tokens, logps, lengths, stop: set[int]) -> RolloutBatch:
    """The rows of ``prompts`` (prompt-major) from the decode loop's buffers."""
    rows_t, rows_lp, reasons, index = [], [], [], []
    for p in prompts:
        for i in range(p * n, (p + 1) * n):
            k = int(lengths[i])
            rows_t.append(tokens[i, :k].tolist())
            rows_lp.append(logps[i, :k].tolist())
            reasons.append("stop" if k and rows_t[-1][-1] in stop else "length")
            index.append(p)
    return RolloutBatch(rows_t, rows_lp, reasons, index, meta={"engine": "funrl.rollout.generation"})


def generate(
    model_or_llm, prompt_embeds: Sequence[torch.Tensor], n: int, sampling: SamplingParams, *, lean: bool | None = None
) -> RolloutBatch:
    """``n`` completions for each ``[L_i, H]`` prompt (an AudioLLM or its ``llm``).

    Each prompt is prefilled once and its KV cache repeated for its ``n`` samples. ``lean``: use
    :class:`funrl.rollout.fast_decode.KVDecoder` (True), the transformers forward (False), or the
    first where it supports the model (None).
    """
    return in_prompt_order(list(iter_generate(model_or_llm, prompt_embeds, n, sampling, lean=lean, each_step=False)))


def in_prompt_order(parts: Sequence[GroupsDone]) -> RolloutBatch:
    """One prompt-major batch from hand-backs that together cover prompts ``0 .. P-1`` once each."""
    by_prompt: dict[int, list[tuple[int, int]]] = {}  # prompt -> (part, row) of its rows
    twice = False
    for j, part in enumerate(parts):
        for r, p in enumerate(part.batch.prompt_index):
            twice |= p in by_prompt and by_prompt[p][0][0] != j
            by_prompt.setdefault(p, []).append((j, r))
    if twice or sorted(by_prompt) != list(range(len(by_prompt))):
        raise ValueError(f"in_prompt_order: the parts cover prompts {sorted(by_prompt)}, not 0..{len(by_prompt) - 1} once each")
    out = RolloutBatch([], [], [], [], meta={"engine": "funrl.rollout.generation"})
    for p in range(len(by_prompt)):
        for j, r in by_prompt[p]:
            b = parts[j].batch
            out.token_ids.append(b.token_ids[r])
            out.logprobs.append(b.logprobs[r])
            out.finish_reasons.append(b.finish_reasons[r])
            out.prompt_index.append(p)
    return out


def decode(tokenizer, token_ids: Sequence[Sequence[int]]) -> list[str]:
    """Transcripts from completions (special tokens such as ``<|im_end|>`` dropped)."""
    return [tokenizer.decode(list(t), skip_special_tokens=True).strip() for t in token_ids]
